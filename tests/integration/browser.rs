//! The web UI in a real browser, as seed 000's users saw theirs: headless
//! chromium driven over WebDriver (chromedriver). A file is chosen on peer
//! A's Upload page, fetched from peer B's Download page and saved through
//! the page's link, byte for byte; the tracker's page, left open in a tab,
//! must refresh itself. Screenshots go to target/browser-screenshots/.
//!
//! Needs chromium and chromedriver (`.ci/run` installs them); without them
//! this test fails and says so, it never passes by skipping.

mod webdriver;

use crate::common::*;
use p2pshare::record::md5_of;
use p2pshare::units::hex;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use webdriver::Browser;

/// Generous: chromium on a loaded 2-core machine can be slow to start.
const WAIT: Duration = Duration::from_secs(180);
/// Not plain ASCII, with a space: the name crosses a URL, a header, JSON and HTML.
const NAME: &str = "relatório p2p.bin";

fn screenshot_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_peer"));
    bin.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/peer")
        .join("browser-screenshots")
}

/// Calls `probe` every 250 ms until it returns something; panics with
/// `what` after `WAIT`. A wait, never an assertion about speed.
fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn body_text(browser: &Browser) -> String {
    browser
        .run("return document.body.innerText;", json!([]))
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The text of each row of the dashboard's peer table, by peer id.
const DASHBOARD_ROWS: &str = "
    const rows = {};
    for (const tr of document.querySelectorAll('#peers tr[data-peer]')) {
        rows[tr.dataset.peer] = (rows[tr.dataset.peer] || '') + tr.textContent + '\\n';
    }
    return [window.p2pshareMarker || null, rows];";

/// The status cell of the Download page's row for a file.
const DOWNLOAD_STATUS: &str = "
    for (const tr of document.querySelectorAll('#swarm tr[data-name]')) {
        if (tr.dataset.name !== arguments[0]) continue;
        const save = tr.querySelector('a.save');
        if (save) return ['saved', save.href];
        const error = tr.querySelector('.error');
        if (error) return ['failed', error.textContent];
        const bar = tr.querySelector('progress');
        if (bar) return ['running', bar.value];
        return ['idle', null];
    }
    return ['absent', null];";

#[test]
fn upload_on_a_fetch_on_b_save_from_the_browser() {
    let (chromium, chromedriver) = webdriver::find_browser();
    let tmp = temp_dir();
    let tracker = TrackerProc::start_with(&tmp.path().join("tracker"), &["--http", "0"]);
    let (_a, url_a) = web_peer("A", &tracker, &tmp.path().join("A"), &[]);
    // B downloads slowly enough for its live bar to be seen moving.
    let (_b, url_b) = web_peer(
        "B",
        &tracker,
        &tmp.path().join("B"),
        &["--download-limit", "256K"],
    );
    let data = test_bytes(1_500_007, 0);
    let md5 = hex(&md5_of(&data));
    let chosen = tmp.path().join("chosen");
    std::fs::create_dir_all(&chosen).unwrap();
    let source = chosen.join(NAME);
    std::fs::write(&source, &data).unwrap();
    let shots = screenshot_dir();
    let browser = Browser::start(&chromium, &chromedriver, &tmp.path().join("profile"));

    // The dashboard in a tab of its own, loaded once and left open.
    let main_tab = browser.current_tab();
    let dash_tab = browser.new_tab();
    browser.switch_to(&dash_tab);
    browser.open(&format!("{}/", tracker.web_url()));
    poll("peers A and B on the dashboard", || {
        let v = browser.run(DASHBOARD_ROWS, json!([]));
        (v[1]["A"].is_string() && v[1]["B"].is_string()).then_some(())
    });
    browser.run(
        "window.p2pshareMarker = 'never reloaded'; return null;",
        json!([]),
    );
    browser.switch_to(&main_tab);

    // A: choose the file on the Upload page and send it.
    browser.open(&format!("{url_a}/upload"));
    let input = browser.find("#file");
    browser.send_keys(&input, source.to_str().unwrap());
    browser.click(&browser.find("#upload-button"));
    let outcome: Value = poll("the upload to finish", || {
        let v = browser.run(
            "const li = document.querySelector('#uploads li');
             return li ? [li.dataset.name, li.dataset.state, li.textContent] : null;",
            json!([]),
        );
        matches!(v[1].as_str(), Some("done" | "failed")).then_some(v)
    });
    assert_eq!(outcome[0], NAME);
    assert_eq!(outcome[1], "done", "the upload failed: {}", outcome[2]);
    assert!(outcome[2].as_str().unwrap().contains(&md5), "{outcome}");
    browser.screenshot(&shots.join("peer-a-upload.png"));
    assert_eq!(
        std::fs::read(tmp.path().join("A/files").join(NAME)).unwrap(),
        data
    );
    browser.open(&format!("{url_a}/"));
    let home = body_text(&browser);
    assert!(
        home.contains(NAME) && home.contains(&md5),
        "A's Home lists it:\n{home}"
    );

    // B: the Download page offers it; fetch it with the button.
    let status = poll("the file on B's Download page", || {
        browser.open(&format!("{url_b}/download"));
        let v = browser.run(DOWNLOAD_STATUS, json!([NAME]));
        (v[0] != "absent").then_some(v)
    });
    assert_eq!(status[0], "idle", "{status}");
    let button = browser.find(&format!("tr[data-name=\"{NAME}\"] form.fetch button"));
    browser.click(&button);
    let mut saw_live_bar = false;
    let href = poll("B's fetch to finish", || {
        let v = browser.run(DOWNLOAD_STATUS, json!([NAME]));
        match v[0].as_str() {
            Some("saved") => Some(v[1].as_str().unwrap().to_string()),
            Some("failed") => panic!("the fetch failed: {}", v[1]),
            Some("running") => {
                let fraction = v[1].as_f64().unwrap_or(0.0);
                if !saw_live_bar && fraction > 0.0 && fraction < 1.0 {
                    saw_live_bar = true;
                    browser.screenshot(&shots.join("peer-b-downloading.png"));
                }
                None
            }
            _ => None,
        }
    });
    browser.screenshot(&shots.join("peer-b-download.png"));
    // 1.5 MB at 256 KiB/s takes about 6 s: two dozen looks at the page.
    assert!(
        saw_live_bar,
        "B's Download page never showed a live bar between 0 and 1 during the fetch"
    );

    // The page's own Save link gives back the very bytes chosen on A.
    let path = href
        .strip_prefix(&url_b)
        .unwrap_or_else(|| panic!("the save link {href} is not on {url_b}"));
    let saved = http::get(&url_b, path);
    assert_eq!(saved.status, 200, "{href}");
    assert!(saved
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
    assert!(
        saved.body == data,
        "the saved file differs from the uploaded one"
    );
    browser.open(&format!("{url_b}/"));
    let home = body_text(&browser);
    assert!(
        home.contains(NAME) && home.contains(&md5),
        "B's Home lists it:\n{home}"
    );
    browser.screenshot(&shots.join("peer-b-home.png"));

    // The dashboard tab caught up by itself: B seeds the file now.
    browser.switch_to(&dash_tab);
    let rows = poll("B seeding on the self-refreshing dashboard", || {
        let v = browser.run(DASHBOARD_ROWS, json!([]));
        let b = v[1]["B"].as_str().unwrap_or_default();
        (b.contains(NAME) && b.contains("seeding")).then_some(v)
    });
    assert_eq!(
        rows[0], "never reloaded",
        "the page refreshed its content, not itself"
    );
    assert!(rows[1]["A"].as_str().unwrap().contains("seeding"), "{rows}");
    browser.screenshot(&shots.join("tracker.png"));
}
