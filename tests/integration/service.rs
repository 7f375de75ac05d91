//! The systemd units under tools/: each has the keys that sandbox it and
//! run the right binary, and, where systemd-analyze is installed,
//! `systemd-analyze verify` finds nothing to say about them (pointed at
//! the binaries this build made, so nothing needs installing).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const UNITS: [&str; 2] = ["p2pshare-tracker.service", "p2pshare-peer@.service"];

/// `[Section]` -> key -> values (a key may repeat).
fn parse(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    out
}

fn unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn units_are_sandboxed_and_run_the_binaries() {
    for name in UNITS {
        let u = parse(&unit(name));
        let service = &u["Service"];
        let one = |k: &str| -> &str {
            let v = service.get(k).unwrap_or_else(|| panic!("{name}: no {k}="));
            v.last().unwrap()
        };
        for (key, want) in [
            ("DynamicUser", "yes"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("CapabilityBoundingSet", ""),
        ] {
            assert_eq!(one(key), want, "{name}: {key}");
        }
        let binary = if name.contains("tracker") {
            "tracker"
        } else {
            "peer"
        };
        let state = one("StateDirectory");
        assert!(state.starts_with(&format!("p2pshare-{binary}")), "{name}");
        let exec = one("ExecStart");
        assert!(
            exec.starts_with(&format!("/usr/local/bin/{binary} ")),
            "{name}: {exec}"
        );
        // Its data lives in the state directory, the only writable place.
        assert!(exec.contains(&format!("%S/{state}")), "{name}: {exec}");
        if binary == "peer" {
            assert!(exec.starts_with("/usr/local/bin/peer %i "), "{exec}");
            assert!(exec.contains("--serve"), "{exec}");
        }
        assert_eq!(u["Install"]["WantedBy"], ["multi-user.target"], "{name}");
    }
}

#[test]
fn systemd_analyze_verify_is_silent() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed: verify skipped (the keys are checked above)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tracker")).parent().unwrap();
    let mut paths = Vec::new();
    for name in UNITS {
        // A template is verified as one of its instances.
        let path = tmp.path().join(name.replace("@.", "@A."));
        let text = unit(name).replace("/usr/local/bin/", &format!("{}/", bin_dir.display()));
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only what it says about our units counts: systemd-analyze run
    // without a systemd (a container) may grumble about itself.
    let about_ours: Vec<&str> = said.lines().filter(|l| l.contains("p2pshare-")).collect();
    assert!(about_ours.is_empty(), "{said}");
}
