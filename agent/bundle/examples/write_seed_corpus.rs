//! Writes the fuzz target's seed corpus, `fuzz/corpus/bundle/seed-*` (see fuzz/README.md):
//!
//! ```text
//! cargo run -p outpost-bundle --example write_seed_corpus
//! ```
//!
//! The output is deterministic (fixed key, fixed timestamps, and ed25519 signatures are
//! deterministic), so running it again rewrites the same bytes. Seeds that reach the deep checks
//! must verify against `fuzzing::seed_key()`, the fuzz target's trust store. Files named
//! `seed-crash-*` are findings kept by hand and are left alone.

use std::path::{Path, PathBuf};

use outpost_bundle::{
    Announcement, ChunkPlan, Limits, ModuleInput, Publisher, ReleaseInput, SignedRelease,
    SignedTrust, TrustDocument, TrustStore, fuzzing, inspect, pack, sha256, verify,
};

/// Fixed creation time of every seed bundle (2023-11-14T22:13:20Z).
const CREATED_MS: i64 = 1_700_000_000_000;

/// A tiny wasm module: the header of an empty module plus one custom section named `name`
/// holding `payload`, so each module differs.
fn fake_wasm(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut section = vec![u8::try_from(name.len()).expect("short name")];
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(payload);
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.push(0); // custom section
    // The section size as unsigned LEB128.
    let mut size = section.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            wasm.push(byte);
            break;
        }
        wasm.push(byte | 0x80);
    }
    wasm.extend_from_slice(&section);
    wasm
}

fn main() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let dir = dir.canonicalize().expect("corpus directory");
    let key = fuzzing::seed_key();

    // One small module.
    let small_wasm = fake_wasm("outpost", b"seed");
    let small = pack(
        "demo",
        "1.0.0",
        "[app]\nname = \"demo\"\nversion = \"1.0.0\"\n\n[components.main]\nmodule = \"main.wasm\"\n",
        &[ModuleInput { id: "main", wasm: &small_wasm }],
        &key,
        CREATED_MS,
    )
    .expect("pack the small bundle");

    // Three modules, large enough that a 256-byte chunk plan has several chunks.
    let sensor = fake_wasm("sensor", &[0x5a; 300]);
    let filter = fake_wasm("filter", b"\x01\x02\x03\x04 moving average");
    let uplink = fake_wasm("uplink", &(0u8..=200).collect::<Vec<_>>());
    let three = pack(
        "greenhouse",
        "2.1.0-rc.1",
        "[app]\nname = \"greenhouse\"\nversion = \"2.1.0-rc.1\"\n\n\
         [components.sensor]\nmodule = \"sensor.wasm\"\n\n\
         [components.filter]\nmodule = \"filter.wasm\"\n\n\
         [components.uplink]\nmodule = \"uplink.wasm\"\n",
        &[
            ModuleInput {
                id: "sensor",
                wasm: &sensor,
            },
            ModuleInput {
                id: "filter",
                wasm: &filter,
            },
            ModuleInput {
                id: "uplink",
                wasm: &uplink,
            },
        ],
        &key,
        CREATED_MS + 86_400_000,
    )
    .expect("pack the three-module bundle");

    let limits = Limits::default();
    let inspected = inspect(&three, &limits).expect("inspect the three-module bundle");
    let announcement = Announcement::for_bundle(&inspected, &three, 256)
        .expect("cut the three-module bundle")
        .encode()
        .expect("encode the announcement");

    // Format 2: the same bundle with signed release metadata (targets, chunk digests, expiry).
    let release = SignedRelease::sign(
        &inspected.header.app,
        &inspected.header.version,
        &ReleaseInput {
            groups: vec!["north".into()],
            devices: vec!["pi-1".into()],
            header_digest: sha256(&inspected.header_bytes),
            chunks: ChunkPlan::cut(&three, 256).expect("cut"),
            created_ms: CREATED_MS,
            expires_ms: CREATED_MS + 30 * 86_400_000,
            counter: 1,
        },
        &key,
    )
    .expect("sign the release");
    let release_bytes = release.bytes.clone();
    let announcement_v2 = Announcement::with_release(&inspected, release, &limits)
        .expect("announce with the release")
        .encode()
        .expect("encode the format 2 announcement");
    // A trust document signed by the seed key as root, listing it as a scoped publisher.
    let trust_document = SignedTrust::sign(
        &TrustDocument {
            version: 1,
            expires_ms: CREATED_MS + 365 * 86_400_000,
            roots: vec![key.public()],
            threshold: 1,
            max_major_jump: 1,
            publishers: vec![Publisher {
                key: key.public(),
                name: "seed".into(),
                apps: vec!["greenhouse".into(), "demo-*".into()],
                targets: vec!["north".into(), "@pi-1".into()],
                gpio: vec!["*".into()],
                publish: vec!["alerts/".into()],
                expires_ms: CREATED_MS + 90 * 86_400_000,
            }],
        },
        &[&key],
    )
    .expect("sign the trust document")
    .encode()
    .expect("encode the trust document");

    // Cut inside the last module: the header still reads, the body is short.
    let truncated = three[..three.len() - 100].to_vec();

    // One bit flipped inside the filter module's bytes: the signature holds, a digest does not.
    let mut module_flip = three.clone();
    let at = find(&module_flip, b"moving average") + 3;
    module_flip[at] ^= 0x01;

    // One bit flipped inside the signed header (its version, "1.0.0" -> "0.0.0"): it still
    // decodes as a header, but the signature no longer covers it.
    let mut header_flip = small.clone();
    let header = &inspect(&small, &limits)
        .expect("inspect the small bundle")
        .header_bytes;
    let at = find(&header_flip, header) + find(header, b"1.0.0");
    header_flip[at] ^= 0x01;

    let seeds: [(&str, &[u8]); 11] = [
        ("seed-valid-small", &small),
        ("seed-valid-three-modules", &three),
        ("seed-announcement-three-modules", &announcement),
        ("seed-announcement-v2-release", &announcement_v2),
        ("seed-release-metadata", &release_bytes),
        ("seed-trust-document", &trust_document),
        ("seed-truncated", &truncated),
        ("seed-module-bit-flip", &module_flip),
        ("seed-header-bit-flip", &header_flip),
        ("seed-empty", b""),
        ("seed-magic-only", b"OPB1"),
    ];
    let trust = TrustStore::new([key.public()]);
    let decoded = Announcement::decode(&announcement, &limits).expect("the announcement decodes");
    decoded.verify(&trust).expect("the announcement verifies");
    for (name, data) in seeds {
        let verifies = fuzzing::exercise(data);
        let expected = name.starts_with("seed-valid-");
        assert_eq!(verifies, expected, "{name}: verifies = {verifies}");
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let outcome = match verify(data, &trust, &limits) {
            Ok(_) => "verifies".to_string(),
            Err(error) => format!("refused: {error}"),
        };
        println!("{:>5} bytes  {}  ({outcome})", data.len(), path.display());
    }
}

/// `fuzz/corpus/bundle` at the repository root.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/bundle")
}

/// Offset of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
        .expect("needle present")
}
