//! The workbench's parsers of untrusted input fed valid files with arbitrary bytes spliced in:
//! an error naming the file (or a documented repair), never a panic. Detection inputs (CSV and
//! headerless SMD text), label files, sweep specs and detector configs.

use proptest::prelude::*;

const CSV: &str = "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2.5\n2014-04-01 00:10:00,3\n";
const SMD: &str = "0.1,0.2,0.3\n0.1,0.25,0.3\n0.2,0.2,0.31\n";
const LABELS: &str = "server,kind,metric,start,end\nweb-server-01,cpu_spike,cpu_usage,2024-01-15T01:00:00Z,2024-01-15T01:05:59Z\n";
const SPEC: &str =
    "name = \"f\"\ndataset = \"sim\"\nobjective = \"event_f1\"\n[detector]\nkind = \"fleet\"\n[space]\nthreshold = [0.5, 0.6]\n";

fn splice(base: &str, at: usize, junk: &[u8]) -> Vec<u8> {
    let at = at.min(base.len());
    let mut out = base.as_bytes()[..at].to_vec();
    out.extend_from_slice(junk);
    out.extend_from_slice(&base.as_bytes()[at..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn files_and_specs_never_panic(at in 0usize..200, junk in proptest::collection::vec(any::<u8>(), 0..48)) {
        let dir = std::env::temp_dir().join(format!("wb-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, base) in [("in.csv", CSV), ("in.txt", SMD)] {
            let path = dir.join(name);
            std::fs::write(&path, splice(base, at, &junk)).unwrap();
            if let Err(e) = workbench::detect::read_input(&path) {
                prop_assert!(e.to_string().contains(name), "the error names the file: {e}");
            }
        }
        let labels = dir.join("labels.csv");
        std::fs::write(&labels, splice(LABELS, at, &junk)).unwrap();
        let _ = workbench::simulate::read_labels(&labels);
        let spec = String::from_utf8_lossy(&splice(SPEC, at, &junk)).into_owned();
        let _ = workbench::sweep::SweepSpec::parse(&spec, "fuzz.toml");
        let det = String::from_utf8_lossy(&splice("kind = \"knn\"\nk = 5\n", at, &junk)).into_owned();
        let _ = workbench::detectors::AnyDetector::from_toml_str(&det, "fuzz.toml").map(|d| d.build(3).map(|_| ()));
    }
}
