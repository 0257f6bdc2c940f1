//! `outpost new TEMPLATE NAME`: a working app from a template, in `./NAME`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use outpost::templates;

/// Arguments of `outpost new`.
#[derive(clap::Args)]
pub struct NewArgs {
    /// Template (see --list).
    #[arg(required_unless_present = "list")]
    template: Option<String>,
    /// App name; also the directory created (unless --dir).
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// Directory to create (default: ./NAME). It must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// List the templates and exit.
    #[arg(long)]
    list: bool,
}

/// Runs `outpost new`.
pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    let (Some(template), Some(name), false) = (&args.template, &args.name, args.list) else {
        for t in templates::all() {
            println!("{:<16} {:<15} {}", t.name, t.language, t.summary);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let template = templates::find(template)?;
    let files = template.render(name)?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    // Never write over someone's files: an existing directory must be empty.
    if let Ok(mut entries) = std::fs::read_dir(&dir) {
        anyhow::ensure!(
            entries.next().is_none(),
            "{} exists and is not empty",
            dir.display()
        );
    }
    for file in &files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &file.text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "created {} ({} app from template {}, {} files)",
        dir.display(),
        template.language,
        template.name,
        files.len()
    );
    println!("next: cd {} && outpost build && outpost up", dir.display());
    Ok(ExitCode::SUCCESS)
}
