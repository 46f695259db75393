//! The HTML evaluation report in a real browser: headless Chromium (Debian `chromium`, installed
//! by tests/run) renders `report.html` to a PNG, and the page is not blank.

use std::path::Path;

/// Share of pixels that are not (near) white, and the number of distinct colours, of a PNG.
fn ink(png_path: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels.iter().filter(|p| p.iter().take(3).any(|c| *c < 235)).count();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    (inked as f64 / pixels.len() as f64, colours.len())
}

#[test]
fn the_evaluation_report_renders_in_headless_chromium() {
    let dir = std::env::temp_dir().join(format!("aiops-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (cfg, _) = workbench::detect::default_detector(false, runtime::BASE_METRICS.len());
    let data = workbench::frames::shipped_sim_dir().unwrap();
    let sim = workbench::evaluation::fleet::evaluate_sim(&data, &cfg, &runtime::decisions::DecisionConfig::default()).unwrap();
    workbench::evaluation::report::write_report(&dir, &cfg, None, None, Some((&sim, data.as_path(), &cfg))).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("Simulator incidents") && html.contains("<figure><svg"), "{html}");
    // Blank pages (an empty body) must fail the ink check below: render one too.
    std::fs::write(dir.join("blank.html"), "<!DOCTYPE html><html><body></body></html>").unwrap();
    let shot = |page: &str| {
        let png = dir.join(page.replace(".html", ".png"));
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,1600",
            ])
            .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", dir.join(page).display()))
            .output()
            .expect("chromium must be installed (tests/run installs Debian's chromium)");
        assert!(png.exists(), "no screenshot of {page}: {}", String::from_utf8_lossy(&out.stderr));
        ink(&png)
    };
    let (report_ink, report_colours) = shot("report.html");
    let (blank_ink, _) = shot("blank.html");
    assert!(blank_ink < 0.001, "the blank page has ink {blank_ink}");
    assert!(report_ink > 0.03 && report_colours > 10, "report page looks blank: ink {report_ink:.4}, {report_colours} colours");
    eprintln!("report.html in Chromium: {:.1} % of pixels inked, {report_colours} colours", 100.0 * report_ink);
    std::fs::remove_dir_all(dir).ok();
}
