//! May et al.'s "bleached" SEAT templates: semantically empty sentences that put a word in
//! context ("This is a boy.", "The boys are here."). Which templates a word gets depends on
//! whether it is a name, a person term, a pronoun, a mass noun or a countable thing.

/// How a word is put into sentences.
enum Kind {
    Name,
    Mass,
    Adjective,
    /// A countable noun: singular, plural, and whether it names people.
    Count {
        singular: String,
        plural: String,
        person: bool,
    },
    /// Subject (he), object (him) and possessive (his) pronouns.
    Subject,
    Object,
    Possessive,
}

/// Uncountable nouns among the WEAT lists (no article, no plural).
const MASS: [&str; 12] = [
    "math",
    "algebra",
    "geometry",
    "calculus",
    "poetry",
    "art",
    "literature",
    "science",
    "physics",
    "chemistry",
    "astronomy",
    "NASA",
];

/// Adjectives among the WEAT lists the gender tests use.
const ADJECTIVES: [&str; 1] = ["professional"];

/// Irregular (or plural-listed) nouns: (singular, plural).
const IRREGULAR: [(&str, &str); 14] = [
    ("man", "men"),
    ("woman", "women"),
    ("child", "children"),
    ("salary", "salaries"),
    ("family", "families"),
    ("symphony", "symphonies"),
    ("technology", "technologies"),
    ("business", "businesses"),
    ("parent", "parents"),
    ("cousin", "cousins"),
    ("relative", "relatives"),
    ("equation", "equations"),
    ("number", "numbers"),
    ("computation", "computations"),
];

fn kind(word: &str, category: &str) -> Kind {
    match word {
        "he" | "she" => return Kind::Subject,
        "him" | "her" => return Kind::Object,
        "his" | "hers" => return Kind::Possessive,
        _ => {}
    }
    if MASS.contains(&word) {
        return Kind::Mass;
    }
    if ADJECTIVES.contains(&word) {
        return Kind::Adjective;
    }
    if category.ends_with("Names") || word.chars().next().is_some_and(char::is_uppercase) {
        return Kind::Name;
    }
    // WEAT lists some nouns in the plural (parents, children): find the singular.
    let (singular, plural) = IRREGULAR
        .iter()
        .find(|(s, p)| *s == word || *p == word)
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .unwrap_or_else(|| (word.to_string(), format!("{word}s")));
    Kind::Count { singular, plural, person: category.ends_with("Terms") }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

/// Every template sentence of every word, in list order.
pub fn sentences(words: &[String], category: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in words {
        match kind(w, category) {
            Kind::Name => {
                for t in [
                    "This is {}.",
                    "That is {}.",
                    "There is {}.",
                    "Here is {}.",
                    "{} is here.",
                    "{} is there.",
                    "{} is a person.",
                    "The person's name is {}.",
                ] {
                    out.push(t.replace("{}", w));
                }
            }
            Kind::Mass => {
                for t in ["This is {}.", "That is {}.", "There is {}.", "It is {}."] {
                    out.push(t.replace("{}", w));
                }
            }
            Kind::Adjective => out.extend([format!("This is {w}."), format!("That is {w}."), format!("They are {w}.")]),
            Kind::Subject => {
                let c = capitalise(w);
                out.extend([
                    format!("{c} is here."),
                    format!("{c} is there."),
                    format!("Here {w} is."),
                    format!("There {w} is."),
                    format!("{c} is a person."),
                ]);
            }
            Kind::Object => out.extend([format!("It is {w}."), format!("This is {w}."), format!("That is {w}.")]),
            Kind::Possessive => {
                let c = capitalise(w);
                out.extend([
                    format!("This is {w}."),
                    format!("That is {w}."),
                    format!("There is {w}."),
                    format!("Here is {w}."),
                    format!("It is {w}."),
                    format!("{c} is there."),
                    format!("{c} is here."),
                ]);
            }
            Kind::Count { singular: s, plural: p, person } => {
                let a = article(&s);
                let (one, many) = if person { ("person", "people") } else { ("thing", "things") };
                out.extend([
                    format!("This is {a} {s}."),
                    format!("That is {a} {s}."),
                    format!("There is {a} {s}."),
                    format!("Here is {a} {s}."),
                    format!("The {s} is here."),
                    format!("The {s} is there."),
                    format!("{} {s} is a {one}.", capitalise(a)),
                ]);
                if !person {
                    out.push(format!("It is {a} {s}."));
                }
                out.extend([
                    format!("These are {p}."),
                    format!("Those are {p}."),
                    format!("They are {p}."),
                    format!("The {p} are here."),
                    format!("The {p} are there."),
                    format!("{} are {many}.", capitalise(&p)),
                ]);
            }
        }
    }
    out
}
