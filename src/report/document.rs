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
                Block::Table(h, rows) => {
                    let _ = writeln!(s, "| {} |", h.join(" | "));
                    let _ = writeln!(s, "|{}", " --- |".repeat(h.len()));
                    for r in rows {
                        let _ = writeln!(
                            s,
                            "| {} |",
                            r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ")
                        );
                    }
                    s.push('\n');
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
             table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
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
                Block::Table(h, rows) => {
                    s.push_str("<table><tr>");
                    for c in h {
                        let _ = write!(s, "<th>{}</th>", inline(c));
                    }
                    s.push_str("</tr>\n");
                    for r in rows {
                        s.push_str("<tr>");
                        for c in r {
                            let _ = write!(s, "<td>{}</td>", inline(c));
                        }
                        s.push_str("</tr>\n");
                    }
                    s.push_str("</table>\n");
                }
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
        s.push_str("</body></html>\n");
        Ok(s)
    }

    /// Writes `<name>.md` and `<name>.html` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<()> {
        crate::util::fs::write_atomic(&dir.join(format!("{name}.md")), self.markdown().as_bytes())?;
        crate::util::fs::write_atomic(&dir.join(format!("{name}.html")), self.html(dir)?.as_bytes())
    }
}

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
