//! `report.html`: a report's Markdown (tables, headings, code) rendered as one self-contained
//! page that opens in any browser: every chart the Markdown links (a local `.svg` next to it) is
//! inlined, so the page can be mailed or attached to a ticket on its own.

use std::path::{Path, PathBuf};

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::frames::FrameError;

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;\
padding:0 1rem;color:#1a1a1a;line-height:1.45}table{border-collapse:collapse;margin:1rem 0}\
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}th{background:#f2f2f2}\
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:.6rem;overflow:auto}\
svg{max-width:100%;height:auto}h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2rem}";

/// Render `markdown` as a self-contained HTML page titled `title`; images that point at a local
/// SVG file (relative to `dir`) are inlined, others kept as links. Returns the page.
pub fn render(markdown: &str, title: &str, dir: &Path) -> String {
    let mut events = Vec::new();
    let mut in_image = false;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                let html = match inline_svg(dir, &dest_url) {
                    Some(svg) => format!("<figure>{svg}</figure>"),
                    None => format!("<a href=\"{0}\">{0}</a>", escape(&dest_url)),
                };
                events.push(Event::Html(CowStr::from(html)));
                in_image = true;
            }
            Event::End(TagEnd::Image) => in_image = false,
            // The image's alt text: dropped (the chart carries its own title).
            _ if in_image => {}
            other => events.push(other),
        }
    }
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, events.into_iter());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// Write `report.html` for `markdown` into `dir`.
pub fn write(markdown: &str, title: &str, dir: &Path) -> Result<PathBuf, FrameError> {
    let path = dir.join("report.html");
    std::fs::write(&path, render(markdown, title, dir)).map_err(|e| FrameError::Io { path: path.display().to_string(), source: e })?;
    Ok(path)
}

/// The SVG at `url` (relative to `dir`, no scheme, no `..`), without its XML prolog.
fn inline_svg(dir: &Path, url: &str) -> Option<String> {
    if !url.ends_with(".svg") || url.contains("://") || url.split('/').any(|p| p == "..") {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(url)).ok()?;
    let start = text.find("<svg")?;
    Some(text[start..].to_string())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_and_local_charts_are_inlined() {
        let dir = std::env::temp_dir().join(format!("wb-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("c.svg"),
            "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"4\" height=\"4\"/></svg>",
        )
        .unwrap();
        let md = "# Title <x>\n\n| a | b |\n|---|---:|\n| 1 | 2 |\n\n![chart](c.svg)\n\n![gone](missing.svg)\n";
        let html = render(md, "T & more", &dir);
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<title>T &amp; more</title>"), "{html}");
        assert!(html.contains("<table>") && html.contains("<td style=\"text-align: right\">2</td>"), "{html}");
        assert!(html.contains("<figure><svg xmlns") && !html.contains("<?xml") && !html.contains("src=\"c.svg\""), "{html}");
        assert!(html.contains("<a href=\"missing.svg\">"), "a missing chart stays a link: {html}");
        std::fs::remove_dir_all(dir).ok();
    }
}
