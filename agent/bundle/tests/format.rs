//! The bundle format end to end: pack, verify, and every way a bundle can be wrong.

use outpost_bundle::{
    Announcement, BundleError, Limits, ModuleInput, SecretKey, TrustStore, fuzzing, inspect, pack,
    verify,
};

const MANIFEST: &str = "[app]\nname = \"demo\"\nversion = \"1.2.0\"\n";

fn sample(key: &SecretKey) -> Vec<u8> {
    let a = vec![0xA5u8; 3000];
    let b = b"\0asm\x01\0\0\0 second module".to_vec();
    pack(
        "demo",
        "1.2.0",
        MANIFEST,
        &[
            ModuleInput {
                id: "first",
                wasm: &a,
            },
            ModuleInput {
                id: "second",
                wasm: &b,
            },
        ],
        key,
        1_700_000_000_000,
    )
    .expect("packs")
}

fn trust(key: &SecretKey) -> TrustStore {
    TrustStore::new([key.public()])
}

#[test]
fn a_packed_bundle_verifies_and_round_trips_its_contents() {
    let key = SecretKey::generate().expect("random");
    let bytes = sample(&key);
    let bundle = verify(&bytes, &trust(&key), &Limits::default()).expect("verifies");
    assert_eq!(bundle.header.app, "demo");
    assert_eq!(bundle.header.version.to_string(), "1.2.0");
    assert_eq!(bundle.header.key_id, key.public().id());
    assert_eq!(bundle.manifest, MANIFEST);
    let ids: Vec<_> = bundle.modules.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);
    assert_eq!(bundle.modules[0].wasm, vec![0xA5u8; 3000]);
    assert_eq!(bundle.file_digest, outpost_bundle::sha256(&bytes));
}

#[test]
fn a_bundle_signed_by_an_unknown_key_is_refused_naming_the_key() {
    let signer = SecretKey::generate().expect("random");
    let device_key = SecretKey::generate().expect("random");
    let bytes = sample(&signer);
    let error = verify(&bytes, &trust(&device_key), &Limits::default()).expect_err("unknown");
    assert!(
        matches!(error, BundleError::UnknownKey { key_id, .. } if key_id == signer.public().id())
    );
    assert!(
        error
            .to_string()
            .contains(&device_key.public().id().to_string()),
        "{error}"
    );
    let error = verify(&bytes, &TrustStore::default(), &Limits::default()).expect_err("empty");
    assert!(error.to_string().contains("trusted keys: none"), "{error}");
}

#[test]
fn one_flipped_bit_in_a_module_names_the_module() {
    let key = SecretKey::generate().expect("random");
    let mut bytes = sample(&key);
    let at = bytes
        .windows(4)
        .position(|w| w == [0xA5; 4])
        .expect("module bytes present")
        + 100;
    bytes[at] ^= 0x01;
    let error = verify(&bytes, &trust(&key), &Limits::default()).expect_err("tampered");
    assert!(
        matches!(&error, BundleError::ModuleDigest { component, .. } if component == "first"),
        "{error}"
    );
}

#[test]
fn every_single_bit_flip_is_refused_and_nothing_panics() {
    let key = SecretKey::from_seed([3; 32]);
    let bytes = pack(
        "demo",
        "1.0.0",
        MANIFEST,
        &[ModuleInput {
            id: "m",
            wasm: b"abc",
        }],
        &key,
        0,
    )
    .expect("packs");
    let trust = trust(&key);
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(
            verify(&flipped, &trust, &Limits::default()).is_err(),
            "bit {bit} flipped still verified"
        );
    }
}

#[test]
fn every_truncation_is_refused_as_truncated_or_short() {
    let key = SecretKey::from_seed([4; 32]);
    let bytes = sample(&key);
    let trust = trust(&key);
    for len in 0..bytes.len() {
        let error = verify(&bytes[..len], &trust, &Limits::default()).expect_err("truncated");
        let text = error.to_string();
        assert!(
            matches!(
                error,
                BundleError::Truncated { .. } | BundleError::BadMagic { .. }
            ),
            "length {len}: {text}"
        );
    }
}

#[test]
fn a_bundle_over_the_size_limit_is_refused_before_decoding() {
    let key = SecretKey::generate().expect("random");
    let bytes = sample(&key);
    let limits = Limits {
        max_bundle_bytes: 100,
        ..Limits::default()
    };
    let error = verify(&bytes, &trust(&key), &limits).expect_err("too large");
    assert!(
        matches!(error, BundleError::TooLarge { limit: 100, .. }),
        "{error}"
    );
}

#[test]
fn bad_names_versions_and_module_lists_are_refused_when_packing() {
    let key = SecretKey::generate().expect("random");
    let m = [ModuleInput {
        id: "m",
        wasm: b"x",
    }];
    assert!(matches!(
        pack("Demo", "1.0.0", "", &m, &key, 0),
        Err(BundleError::BadAppName(_))
    ));
    assert!(matches!(
        pack("demo", "1.0", "", &m, &key, 0),
        Err(BundleError::BadVersion { .. })
    ));
    assert!(matches!(
        pack("demo", "1.0.0", "", &[], &key, 0),
        Err(BundleError::Modules(_))
    ));
}

#[test]
fn inspect_reports_a_tampered_body_without_a_trust_store() {
    let key = SecretKey::generate().expect("random");
    let mut bytes = sample(&key);
    let inspected = inspect(&bytes, &Limits::default()).expect("decodes");
    assert!(inspected.body.is_ok());
    assert!(inspected.check(&trust(&key)).is_ok());
    assert_eq!(inspected.modules.len(), 2);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    let inspected = inspect(&bytes, &Limits::default()).expect("header still decodes");
    assert!(inspected.body.is_err());
    assert!(inspected.check(&trust(&key)).is_err());
}

#[test]
fn an_announcement_round_trips_and_carries_the_signed_header() {
    let key = SecretKey::generate().expect("random");
    let bytes = sample(&key);
    let inspected = inspect(&bytes, &Limits::default()).expect("decodes");
    let announcement = Announcement::for_bundle(&inspected, &bytes, 1024).expect("cuts");
    assert_eq!(announcement.chunks.count(), bytes.len().div_ceil(1024));
    let decoded =
        Announcement::decode(&announcement.encode().expect("encodes"), &Limits::default())
            .expect("decodes");
    assert_eq!(decoded, announcement);
    let header = decoded.verify(&trust(&key)).expect("trusted");
    assert_eq!(
        (header.app.as_str(), header.version.to_string()),
        ("demo", "1.2.0".into())
    );
    let mut reassembled = Vec::new();
    for index in 0..decoded.chunks.count() {
        let chunk = &bytes[decoded.chunks.range(index)];
        assert!(decoded.chunks.chunk_matches(index, chunk));
        reassembled.extend_from_slice(chunk);
    }
    assert_eq!(reassembled, bytes);
    assert!(!decoded.chunks.chunk_matches(0, &bytes[1..1025]));
    let other = SecretKey::generate().expect("random");
    assert!(matches!(
        decoded.verify(&TrustStore::new([other.public()])),
        Err(BundleError::UnknownKey { .. })
    ));
}

#[test]
fn an_announcement_whose_numbers_disagree_is_refused() {
    let key = SecretKey::generate().expect("random");
    let bytes = sample(&key);
    let inspected = inspect(&bytes, &Limits::default()).expect("decodes");
    let mut announcement = Announcement::for_bundle(&inspected, &bytes, 1024).expect("cuts");
    announcement.chunks.chunk_digests.pop();
    let error = Announcement::decode(&announcement.encode().expect("encodes"), &Limits::default())
        .expect_err("inconsistent");
    assert!(
        error.to_string().contains("chunks, but it lists"),
        "{error}"
    );
}

/// The fuzz target's seed corpus (fuzz/corpus/bundle) runs through the fuzz target's own checks.
#[test]
fn the_fuzz_seed_corpus_runs_through_the_fuzz_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/bundle");
    let mut seeds = 0;
    let mut verified = 0;
    for entry in std::fs::read_dir(&dir).expect("seed corpus present") {
        let data = std::fs::read(entry.expect("entry").path()).expect("readable");
        seeds += 1;
        verified += usize::from(fuzzing::exercise(&data));
    }
    assert!(seeds >= 4, "only {seeds} seeds in {}", dir.display());
    assert!(
        verified >= 1,
        "no seed verifies: the corpus no longer reaches the deep checks"
    );
}

#[test]
fn inspect_reads_the_header_of_a_truncated_bundle_and_says_it_is_truncated() {
    let key = SecretKey::generate().expect("random");
    let bytes = sample(&key);
    let cut = &bytes[..bytes.len() - 500];
    let inspected = inspect(cut, &Limits::default()).expect("header readable");
    assert_eq!(inspected.header.app, "demo");
    assert!(
        matches!(inspected.body, Err(BundleError::Truncated { .. })),
        "{:?}",
        inspected.body
    );
    assert!(inspected.check(&trust(&key)).is_err());
}
