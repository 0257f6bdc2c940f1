//! Packaging for flashing (docs/FLASHING.md): `outpost provision` writes a tree the agent loads,
//! with owner-only secrets, and refuses bad input with one line naming the problem;
//! `cross/package-deb.sh` builds a .deb whose files, modes, control fields, example config and
//! hardened unit are right (`systemd-analyze verify`), and which installs into a scratch root
//! with its maintainer scripts (service user, enable link, ownership of provisioned secrets).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use outpost::config;
use outpost_hal::mqtt::{MqttConfig, RumqttcTransport};

use crate::OUTPOST;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"))
}

fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn outpost(args: &[&str], dir: &Path) -> Output {
    run(Command::new(OUTPOST).args(args).current_dir(dir))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A CA and a client certificate with its key signed by it (PEM, in `dir`), plus a second key
/// that belongs to no certificate.
fn make_certificates(dir: &Path) {
    let openssl = |args: &str| {
        ok(Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir));
    };
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(&format!(
        "req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=ca"
    ));
    openssl(&format!(
        "req {key} -keyout client.key -out client.csr -subj /CN=pi-07"
    ));
    // Extensions make it an X.509 v3 certificate (webpki refuses v1).
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    openssl(
        "x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
         -days 2 -extfile client.ext",
    );
    openssl("genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out other.key");
}

/// Inputs for `provision` in `dir`: certificates, two trust keys, a password file.
fn provision_inputs(dir: &Path) {
    make_certificates(dir);
    std::fs::create_dir(dir.join("keys")).expect("keys dir");
    let key = |seed: u8| {
        outpost_bundle::SecretKey::from_seed([seed; 32])
            .public()
            .to_text()
    };
    std::fs::write(dir.join("release.pub"), key(7)).expect("key");
    std::fs::write(dir.join("keys/ops.pub"), key(8)).expect("key");
    std::fs::write(dir.join("pw"), "s3cret \"quoted\"\n").expect("password");
}

const FULL: &[&str] = &[
    "provision",
    "--device-id",
    "pi-07",
    "--broker",
    "mqtts://broker.example:8883",
    "--trust",
    "release.pub",
    "--trust",
    "keys/ops.pub",
    "--group",
    "north",
    "--group",
    "pumps",
    "--group",
    "north",
    "--username",
    "pi-07",
    "--password-file",
    "pw",
    "--ca-file",
    "ca.pem",
    "--client-cert",
    "client.pem",
    "--client-key",
    "client.key",
    "--out",
    "out",
];

#[test]
fn provision_writes_a_tree_the_agent_loads_with_owner_only_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    provision_inputs(dir);

    let run = outpost(FULL, dir);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let etc = dir.join("out/etc/outpost");

    let loaded = config::load(&etc.join("agent.toml")).expect("the agent loads it");
    assert_eq!(loaded.device_id, "pi-07");
    assert_eq!(loaded.data_dir, PathBuf::from("/var/lib/outpost"));
    assert_eq!(loaded.app, None);
    assert_eq!(loaded.mqtt.broker, "mqtts://broker.example:8883");
    assert_eq!(loaded.mqtt.username.as_deref(), Some("pi-07"));
    assert_eq!(loaded.mqtt.password.as_deref(), Some("s3cret \"quoted\""));
    let tls = |name: &str| Some(PathBuf::from("/etc/outpost/tls").join(name));
    assert_eq!(loaded.mqtt.ca_file, tls("ca.pem"));
    assert_eq!(loaded.mqtt.client_cert, tls("client.crt"));
    assert_eq!(loaded.mqtt.client_key, tls("client.key"));
    assert_eq!(loaded.outbox, Default::default(), "defaults for the rest");

    for (file, expected) in [
        ("agent.toml", 0o600),
        ("tls/client.key", 0o600),
        ("tls/ca.pem", 0o644),
        ("tls/client.crt", 0o644),
        ("trust/release.pub", 0o644),
        ("trust/ops.pub", 0o644),
    ] {
        assert_eq!(mode(&etc.join(file)), expected, "mode of {file}");
    }
    for made in ["", "etc", "etc/outpost", "etc/outpost/tls"] {
        assert_eq!(mode(&dir.join("out").join(made)), 0o755, "mode of {made}/");
    }
    let read = |path: PathBuf| std::fs::read(&path).expect("readable");
    assert_eq!(
        read(etc.join("trust/release.pub")),
        read(dir.join("release.pub"))
    );
    assert_eq!(
        read(etc.join("trust/ops.pub")),
        read(dir.join("keys/ops.pub"))
    );
    assert_eq!(
        read(etc.join("tls/client.key")),
        read(dir.join("client.key"))
    );
    assert_eq!(loaded.fleet.groups, ["north", "pumps"], "each group once");
    assert_eq!(loaded.fleet.trust, [PathBuf::from("/etc/outpost/trust")]);
    let trust = outpost::fleet::load_trust(&[etc.join("trust")]).expect("the trust store loads");
    assert_eq!(trust.keys().len(), 2);

    // The copied TLS files are what the transport accepts (CA parses, key fits certificate).
    let mut mqtt = MqttConfig::new(
        loaded.mqtt.broker.parse().expect("broker URL"),
        loaded.device_id.clone(),
    );
    mqtt.ca_file = Some(etc.join("tls/ca.pem"));
    mqtt.client_cert = Some(etc.join("tls/client.crt"));
    mqtt.client_key = Some(etc.join("tls/client.key"));
    RumqttcTransport::new(mqtt).expect("usable TLS files");
}

/// Flag values to replace in a good command line, flags to add, and the expected message.
type BadInput<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

#[test]
fn provision_refuses_bad_input_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    provision_inputs(dir);
    std::fs::write(dir.join("empty.pub"), "").expect("key");
    std::fs::write(dir.join("huge.pub"), [1u8; 2048]).expect("key");
    std::fs::write(dir.join("notakey.pub"), "ssh-ed25519 AAAA laptop\n").expect("key");

    let base = [
        "provision",
        "--device-id",
        "pi-07",
        "--broker",
        "mqtt://broker.local",
        "--trust",
        "release.pub",
        "--out",
        "out",
    ];
    let cases: &[BadInput] = &[
        (
            &[("release.pub", "missing.pub")],
            &[],
            "--trust missing.pub: cannot read",
        ),
        (
            &[("release.pub", "empty.pub")],
            &[],
            "--trust empty.pub: is empty",
        ),
        (
            &[("release.pub", "huge.pub")],
            &[],
            "2048 bytes is too large",
        ),
        (
            &[("release.pub", "notakey.pub")],
            &[],
            "--trust notakey.pub: not a usable key",
        ),
        (
            &[],
            &["--trust", "keys/release.pub"],
            "a second key named release.pub",
        ),
        (&[("pi-07", "pi/07")], &[], "device_id 'pi/07' must be"),
        (
            &[("mqtt://broker.local", "http://broker.local")],
            &[],
            "--broker 'http://broker.local'",
        ),
        (
            &[("mqtt://broker.local", "mqtts://b:99999")],
            &[],
            "port must be a number",
        ),
        (&[], &["--group", "a/b"], "--group 'a/b'"),
        (&[], &["--ca-file", "ca.pem"], "need an mqtts:// broker"),
        (
            &[("mqtt://broker.local", "mqtts://b")],
            &["--ca-file", "missing.pem"],
            "missing.pem",
        ),
        (
            &[("mqtt://broker.local", "mqtts://b")],
            &["--client-cert", "client.pem", "--client-key", "other.key"],
            "does not fit",
        ),
        (
            &[],
            &["--username", "u", "--password-file", "nowhere"],
            "--password-file nowhere: cannot read",
        ),
    ];
    for (replace, extra, expected) in cases {
        let mut args: Vec<&str> = base
            .iter()
            .map(|arg| {
                replace
                    .iter()
                    .find(|(from, _)| from == arg)
                    .map_or(*arg, |(_, to)| *to)
            })
            .collect();
        args.extend_from_slice(extra);
        let run = outpost(&args, dir);
        let stderr = text(&run.stderr);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(
            stderr.starts_with("error: ") && stderr.lines().count() == 1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!dir.join("out").exists(), "{args:?} wrote something");
    }
}

#[test]
fn provision_writes_into_a_non_empty_dir_only_with_force_and_drops_stale_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    provision_inputs(dir);
    assert!(outpost(FULL, dir).status.success());
    std::fs::write(dir.join("out/etc/hostname"), "pi-07\n").expect("other file");

    let again = [
        "provision",
        "--device-id",
        "pi-08",
        "--broker",
        "mqtt://broker.local",
        "--trust",
        "keys/ops.pub",
        "--out",
        "out",
    ];
    let refused = outpost(&again, dir);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--out out: not empty (use --force"),
        "{}",
        text(&refused.stderr)
    );

    let forced = outpost(&[&again[..], &["--force"]].concat(), dir);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let etc = dir.join("out/etc/outpost");
    let loaded = config::load(&etc.join("agent.toml")).expect("loads");
    assert_eq!(loaded.device_id, "pi-08");
    assert_eq!((loaded.mqtt.username, loaded.mqtt.ca_file), (None, None));
    assert!(etc.join("trust/ops.pub").exists());
    for stale in [
        "trust/release.pub",
        "tls/ca.pem",
        "tls/client.crt",
        "tls/client.key",
    ] {
        assert!(!etc.join(stale).exists(), "{stale} is left behind");
    }
    assert!(loaded.fleet.groups.is_empty(), "no --group: no groups");
    assert!(
        dir.join("out/etc/hostname").exists(),
        "other files are not touched"
    );
}

/// The Debian architecture of the machine running the tests.
fn host_deb_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("amd64"),
        "aarch64" => Some("arm64"),
        "arm" => Some("armhf"),
        _ => None,
    }
}

#[test]
fn the_deb_carries_the_agent_its_example_config_and_a_unit_systemd_accepts() {
    let Some(arch) = host_deb_arch() else {
        println!(
            "SKIPPED: no Debian architecture for {}",
            std::env::consts::ARCH
        );
        return;
    };
    assert!(
        has("dpkg-deb") && has("readelf"),
        "dpkg-deb and readelf are needed (Debian packages dpkg, binutils; ./setup.sh)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();

    // The debug binary, stripped (160 MB -> 20 MB) so packaging is quick.
    let binary = dir.join("outpost");
    std::fs::copy(OUTPOST, &binary).expect("copy binary");
    if has("strip") {
        ok(Command::new("strip").arg(&binary));
    }
    let printed = ok(Command::new(repo_root().join("cross/package-deb.sh"))
        .args([arch, binary.to_str().expect("utf-8"), "debs"])
        .current_dir(dir)
        .env("DEB_COMPRESSION", "gzip"));
    let version = env!("CARGO_PKG_VERSION").replace('-', "~");
    let deb = dir.join(format!("debs/outpost_{version}_{arch}.deb"));
    assert_eq!(printed.trim(), format!("debs/outpost_{version}_{arch}.deb"));
    assert!(deb.is_file());

    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in [
        "Package: outpost".to_string(),
        format!("Version: {version}"),
        format!("Architecture: {arch}"),
        "Maintainer: ".into(),
        "Installed-Size: ".into(),
        "Depends: libc6 (>= 2.".into(),
        "Description: offline-first edge agent".into(),
    ] {
        assert!(info.contains(&format!("\n {field}")), "no {field}:\n{info}");
    }
    // Cron time zones come from the system's tz database.
    assert!(
        info.lines()
            .any(|line| line.starts_with(" Depends: ") && line.ends_with(", tzdata")),
        "no tzdata in Depends:\n{info}"
    );
    let conffiles = ok(Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles, "/etc/outpost/agent.toml\n");

    // Everything root-owned, with these modes.
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(
        listing.lines().all(|line| line.contains(" root/root ")),
        "{listing}"
    );
    let root = dir.join("root");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    for (file, expected) in [
        ("usr/bin/outpost", 0o755),
        ("lib/systemd/system/outpost.service", 0o644),
        ("etc/outpost/agent.toml", 0o644),
        ("usr/lib/sysusers.d/outpost.conf", 0o644),
        ("usr/lib/tmpfiles.d/outpost.conf", 0o644),
        ("usr/share/doc/outpost/FLASHING.md", 0o644),
        ("usr/share/doc/outpost/copyright", 0o644),
    ] {
        assert_eq!(mode(&root.join(file)), expected, "mode of {file}");
    }
    let version_line = ok(Command::new(root.join("usr/bin/outpost")).arg("--version"));
    assert!(
        version_line.contains(env!("CARGO_PKG_VERSION")),
        "{version_line}"
    );

    // The example config loads, and every commented setting is real and shows its default.
    let example = root.join("etc/outpost/agent.toml");
    let loaded = config::load(&example).expect("the packaged agent.toml loads");
    assert_eq!(loaded.device_id, "unprovisioned");
    assert_eq!(loaded.data_dir, PathBuf::from("/var/lib/outpost"));
    let original = std::fs::read_to_string(&example).expect("read");
    let not_defaults = [
        "app",
        "username",
        "password",
        "ca_file",
        "client_cert",
        "client_key",
    ];
    let uncommented: String = original
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(setting)
                if setting.contains(" = ")
                    && !not_defaults.contains(&setting.split(' ').next().unwrap_or("")) =>
            {
                format!("{setting}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    assert_ne!(uncommented, original);
    let with_defaults = config::parse(&uncommented, &example).expect("uncommented loads");
    assert_eq!(
        with_defaults, loaded,
        "a commented value is not the default"
    );

    // The unit's ExecCondition skips the start with the example's device id, not after
    // provisioning.
    let unit_path = root.join("lib/systemd/system/outpost.service");
    let unit = std::fs::read_to_string(&unit_path).expect("unit");
    let condition = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecCondition=/bin/sh -c '"))
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("an ExecCondition running sh -c '...'");
    let example_path = example.to_str().expect("utf-8");
    let check = |config: &str| {
        run(Command::new("sh")
            .arg("-c")
            .arg(condition.replace("/etc/outpost/agent.toml", config)))
        .status
        .code()
    };
    assert_eq!(check(example_path), Some(1), "unprovisioned: skipped");
    let provisioned = dir.join("provisioned.toml");
    std::fs::write(
        &provisioned,
        original.replace("\"unprovisioned\"", "\"pi-07\""),
    )
    .expect("write");
    assert_eq!(
        check(provisioned.to_str().expect("utf-8")),
        Some(0),
        "provisioned: runs"
    );
    assert!(unit.contains("\nExecStart=/usr/bin/outpost agent --config /etc/outpost/agent.toml\n"));

    verify_unit(&root);
}

/// `systemd-analyze verify` on the unpacked package: `--root` makes it look for the unit, its
/// commands and its dependencies there, so the scratch root gets /bin/sh (ExecCondition) and the
/// host's targets (multi-user.target, sysinit.target, ...). Warnings (unknown keys, bad values)
/// leave the exit code at 0, so stderr must be empty too.
fn verify_unit(root: &Path) {
    if !has("systemd-analyze") {
        println!(
            "SKIPPED systemd-analyze verify: systemd-analyze is not installed (package systemd)"
        );
        return;
    }
    let units = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).expect("units dir");
    std::fs::create_dir_all(root.join("bin")).expect("bin");
    std::fs::copy("/bin/sh", root.join("bin/sh")).expect("copy /bin/sh");
    for entry in std::fs::read_dir("/usr/lib/systemd/system").expect("host units") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "target") {
            std::fs::copy(&path, units.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let output = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("outpost.service"));
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A symbolic link, whether or not its target exists here (it names a path in the scratch root).
fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    ok(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-confold",
        ])
        .args(["--log=/dev/null", "--no-debsig"])
        .args(args))
}

/// Installs the package with its maintainer scripts into a scratch root (chrootless: the
/// scripts act on $DPKG_ROOT only), the way docs/FLASHING.md installs it into a mounted image.
#[test]
fn the_deb_installs_into_a_scratch_root_with_user_enable_link_and_kept_config() {
    let Some(arch) = host_deb_arch() else {
        println!(
            "SKIPPED: no Debian architecture for {}",
            std::env::consts::ARCH
        );
        return;
    };
    let uid = ok(Command::new("id").arg("-u"));
    if uid.trim() != "0" || !has("dpkg") || !has("deb-systemd-helper") {
        println!("SKIPPED dpkg --root install: needs root, dpkg and deb-systemd-helper");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let binary = dir.join("outpost");
    std::fs::copy(OUTPOST, &binary).expect("copy binary");
    if has("strip") {
        ok(Command::new("strip").arg(&binary));
    }
    let deb = ok(Command::new(repo_root().join("cross/package-deb.sh"))
        .args([
            arch,
            binary.to_str().expect("utf-8"),
            dir.to_str().expect("utf-8"),
        ])
        .env("DEB_COMPRESSION", "none"));
    let deb = deb.trim();

    // A scratch root as a fresh Raspberry Pi OS has it: a dpkg database, a `gpio` group, and
    // this device's files provisioned beforehand by a user (uid 1000), key mode 0600.
    let root = dir.join("root");
    for made in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "etc/outpost/tls",
    ] {
        std::fs::create_dir_all(root.join(made)).expect("mkdir");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\ngpio:x:997:\n").expect("group");
    let key = root.join("etc/outpost/tls/client.key");
    std::fs::write(&key, "key").expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    ok(Command::new("chown").args(["1000:1000"]).arg(&key));

    dpkg(&root, &["--install", deb]);
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    let group = std::fs::read_to_string(root.join("etc/group")).expect("group");
    let user = passwd
        .lines()
        .find(|l| l.starts_with("outpost:"))
        .unwrap_or_else(|| panic!("no user outpost:\n{passwd}"));
    assert!(
        user.ends_with(":/var/lib/outpost:/usr/sbin/nologin"),
        "{user}"
    );
    assert!(group.lines().any(|l| l == "gpio:x:997:outpost"), "{group}");
    let gid: u32 = group
        .lines()
        .find_map(|l| l.strip_prefix("outpost:x:"))
        .and_then(|rest| rest.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no group outpost:\n{group}"));
    let wants = root.join("etc/systemd/system/multi-user.target.wants/outpost.service");
    assert_eq!(
        std::fs::read_link(&wants).expect("enabled"),
        PathBuf::from("/lib/systemd/system/outpost.service")
    );
    let meta = std::fs::metadata(&key).expect("key");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (0, gid, 0o640),
        "the provisioned key belongs to root, readable by the service's group only"
    );
    assert_eq!(mode(&root.join("usr/bin/outpost")), 0o755);

    // Upgrading keeps a provisioned agent.toml; removing masks the unit; purging forgets it.
    let config = root.join("etc/outpost/agent.toml");
    let provisioned = std::fs::read_to_string(&config)
        .expect("config")
        .replace("\"unprovisioned\"", "\"pi-07\"");
    std::fs::write(&config, &provisioned).expect("edit");
    dpkg(&root, &["--install", deb]);
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        provisioned
    );
    assert!(is_link(&wants), "still enabled after an upgrade");
    dpkg(&root, &["--remove", "outpost"]);
    assert!(!root.join("usr/bin/outpost").exists());
    assert_eq!(
        std::fs::read_link(root.join("etc/systemd/system/outpost.service")).ok(),
        Some(PathBuf::from("/dev/null")),
        "remove masks the unit (debhelper's way of remembering it was enabled)"
    );
    assert!(config.exists(), "remove keeps the config");
    dpkg(&root, &["--purge", "outpost"]);
    assert!(!config.exists(), "purge removes the conffile");
    assert!(
        !is_link(&wants) && !is_link(&root.join("etc/systemd/system/outpost.service")),
        "purge leaves no enable link or mask"
    );
}
