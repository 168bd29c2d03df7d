//! A small document model rendered twice: Markdown for the terminal and repositories, and a
//! self-contained HTML page with the plots' SVGs inlined (no external files to lose).

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

pub enum Block {
    Heading(usize, String),
    Para(String),
    /// Header and rows; cells are plain text (Markdown code spans `x` are kept as code).
    Table(Vec<String>, Vec<Vec<String>>),
    /// A plot by its path stem relative to the report (`<stem>.png` and `<stem>.svg` exist).
    Plot(String, String),
    List(Vec<String>),
    /// A table the HTML page can sort by any column (click its header); Markdown shows its
    /// first `shown` rows and says how many more the HTML page has.
    Sortable {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        shown: usize,
    },
}

#[derive(Default)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn new(title: impl Into<String>) -> Self {
        Document { title: title.into(), blocks: Vec::new() }
    }

    pub fn heading(&mut self, level: usize, text: impl Into<String>) {
        self.blocks.push(Block::Heading(level, text.into()));
    }

    pub fn para(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Para(text.into()));
    }

    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table(header.iter().map(|s| s.to_string()).collect(), rows));
    }

    pub fn plot(&mut self, stem: impl Into<String>, caption: impl Into<String>) {
        self.blocks.push(Block::Plot(stem.into(), caption.into()));
    }

    pub fn sortable(&mut self, header: &[&str], rows: Vec<Vec<String>>, shown: usize) {
        self.blocks.push(Block::Sortable { header: header.iter().map(|s| s.to_string()).collect(), rows, shown });
    }

    pub fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title);
        for b in &self.blocks {
            match b {
                Block::Heading(l, t) => {
                    let _ = writeln!(s, "{} {t}\n", "#".repeat(l + 1));
                }
                Block::Para(t) => {
                    let _ = writeln!(s, "{t}\n");
                }
                Block::Table(h, rows) => markdown_table(&mut s, h, rows),
                Block::Sortable { header, rows, shown } => {
                    markdown_table(&mut s, header, &rows[..rows.len().min(*shown)]);
                    if rows.len() > *shown {
                        let _ = writeln!(s, "({} more rows, sortable, in the HTML report.)\n", rows.len() - shown);
                    }
                }
                Block::Plot(stem, caption) => {
                    let _ = writeln!(s, "![{caption}]({stem}.png)\n");
                }
                Block::List(items) => {
                    for i in items {
                        let _ = writeln!(s, "- {i}");
                    }
                    s.push('\n');
                }
            }
        }
        s
    }

    /// HTML with every plot's SVG read from `dir` and inlined.
    pub fn html(&self, dir: &Path) -> Result<String> {
        let mut s = String::new();
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>\
             body{{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}\
             table{{border-collapse:collapse}}.box{{overflow-x:auto;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}th{{white-space:nowrap}}\
             th{{background:#f3f3f3}}code{{background:#f3f3f3;padding:0 3px}}figure{{margin:1em 0}}svg{{max-width:100%;height:auto}}\
             </style></head><body>\n<h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for b in &self.blocks {
            match b {
                Block::Heading(l, t) => {
                    let _ = writeln!(s, "<h{0}>{1}</h{0}>", l + 1, inline(t));
                }
                Block::Para(t) => {
                    let _ = writeln!(s, "<p>{}</p>", inline(t));
                }
                Block::Table(h, rows) => html_table(&mut s, h, rows, false),
                Block::Sortable { header, rows, .. } => html_table(&mut s, header, rows, true),
                Block::Plot(stem, caption) => {
                    let path = dir.join(format!("{stem}.svg"));
                    let svg = std::fs::read_to_string(&path)
                        .with_context(|| format!("{}: cannot read plot", path.display()))?;
                    let svg = svg.find("<svg").map(|i| &svg[i..]).unwrap_or(&svg);
                    let _ = writeln!(s, "<figure>{svg}<figcaption>{}</figcaption></figure>", inline(caption));
                }
                Block::List(items) => {
                    s.push_str("<ul>");
                    for i in items {
                        let _ = write!(s, "<li>{}</li>", inline(i));
                    }
                    s.push_str("</ul>\n");
                }
            }
        }
        if self.blocks.iter().any(|b| matches!(b, Block::Sortable { .. })) {
            s.push_str(SORT_SCRIPT);
        }
        s.push_str("</body></html>\n");
        Ok(s)
    }

    /// Writes `<name>.md` and `<name>.html` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<()> {
        crate::util::fs::write_atomic(&dir.join(format!("{name}.md")), self.markdown().as_bytes())?;
        crate::util::fs::write_atomic(&dir.join(format!("{name}.html")), self.html(dir)?.as_bytes())
    }
}

fn markdown_table(s: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", " --- |".repeat(header.len()));
    for r in rows {
        let _ = writeln!(s, "| {} |", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
    }
    s.push('\n');
}

/// A table in its own scrolling box, so that a wide one never widens the page.
fn html_table(s: &mut String, header: &[String], rows: &[Vec<String>], sortable: bool) {
    s.push_str(if sortable {
        "<div class=\"box\"><table class=\"sortable\"><thead><tr>"
    } else {
        "<div class=\"box\"><table><thead><tr>"
    });
    for c in header {
        let _ = write!(s, "<th>{}</th>", inline(c));
    }
    s.push_str("</tr></thead><tbody>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", inline(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table></div>\n");
}

/// Click a header of a sortable table to sort by that column (numbers as numbers; again to
/// reverse). No external script: the page stays self-contained.
const SORT_SCRIPT: &str = "<script>\
document.querySelectorAll('table.sortable th').forEach(function(th,col){th.style.cursor='pointer';th.title='sort';\
th.addEventListener('click',function(){var body=th.closest('table').tBodies[0];var rows=Array.from(body.rows);\
var dir=th.dataset.dir==='asc'?-1:1;th.dataset.dir=dir===1?'asc':'desc';\
var key=function(r){var t=r.cells[col].textContent.trim();var n=parseFloat(t.replace('\\u2212','-'));return isNaN(n)?t.toLowerCase():n;};\
rows.sort(function(a,b){var x=key(a),y=key(b);return (x<y?-1:x>y?1:0)*dir;});rows.forEach(function(r){body.appendChild(r);});});});\
</script>\n";

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Escapes text and turns Markdown code spans into `<code>`.
fn inline(t: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(t).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown_and_self_contained_html() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.svg"), "<?xml version=\"1.0\"?>\n<svg width=\"10\"></svg>").unwrap();
        let mut d = Document::new("T <1>");
        d.heading(1, "Part");
        d.table(&["a", "b"], vec![vec!["`x`".into(), "1|2".into()]]);
        d.plot("p", "cap");
        let md = d.markdown();
        assert!(md.contains("## Part") && md.contains("| `x` | 1\\|2 |") && md.contains("![cap](p.png)"), "{md}");
        let html = d.html(dir.path()).unwrap();
        assert!(
            html.contains("<title>T &lt;1&gt;</title>")
                && html.contains("<td><code>x</code></td>")
                && html.contains("<svg width=\"10\"></svg>")
                && !html.contains("<?xml")
        );
    }
}
