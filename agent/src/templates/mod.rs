//! App templates for `outpost new`: which exist, and the files one of them becomes for a name.
//!
//! The files are compiled into the operator build (`catalog`): a generated app must build and run
//! with no checkout of this repository and no network, so the Rust templates carry a copy of the
//! guest SDK and the C, Zig and AssemblyScript ones their language's SDK file. Handlers come from
//! the examples in `bundles/examples/`, which the tests build and run, so a template cannot drift
//! from working code. Rendering is pure; `cli/new.rs` writes the files.

mod catalog;

use thiserror::Error;

/// One template: what `outpost new --list` shows and the files it writes.
#[derive(Debug)]
pub struct Template {
    /// What `outpost new` is given, e.g. `rust-watcher`.
    pub name: &'static str,
    /// The guest language.
    pub language: &'static str,
    /// One line for `--list`.
    pub summary: &'static str,
    /// Its files, as path in the app and text with `{{name}}`-style placeholders.
    files: &'static [(&'static str, &'static str)],
    /// Text replaced in every file before the placeholders: where an example's paths (to an SDK
    /// elsewhere in the repository) differ from the generated app's.
    rewrites: &'static [(&'static str, &'static str)],
}

/// A file of a generated app: its path relative to the app directory and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Contents.
    pub text: String,
}

/// Why a template cannot be rendered.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// No template of that name.
    #[error("no template '{name}' (outpost new --list shows them: {known})")]
    Unknown {
        /// What was asked for.
        name: String,
        /// The templates there are, comma-separated.
        known: String,
    },
    /// The app name is not one a manifest (and a cargo package) accepts.
    #[error(
        "'{0}' is not a valid app name: 1-64 characters of a-z, 0-9 and '-', starting with a letter"
    )]
    BadName(String),
}

/// Every template, in the order `--list` shows them.
pub fn all() -> &'static [Template] {
    catalog::TEMPLATES
}

/// The template called `name`.
pub fn find(name: &str) -> Result<&'static Template, TemplateError> {
    all()
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| TemplateError::Unknown {
            name: name.to_string(),
            known: all().iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
        })
}

impl Template {
    /// The files of an app called `app` made from this template.
    pub fn render(&self, app: &str) -> Result<Vec<RenderedFile>, TemplateError> {
        check_app_name(app)?;
        let crate_name = app.replace('-', "_");
        Ok(self
            .files
            .iter()
            .map(|(path, text)| RenderedFile {
                path: (*path).to_string(),
                text: self
                    .rewrites
                    .iter()
                    .fold(text.to_string(), |text, (from, to)| text.replace(from, to))
                    .replace("{{name}}", app)
                    .replace("{{crate}}", &crate_name)
                    .replace("{{version}}", env!("CARGO_PKG_VERSION")),
            })
            .collect())
    }
}

/// The manifest's app-name rule (`[a-z0-9-]`, 1..64), and a letter first, which cargo and Zig
/// identifiers need.
fn check_app_name(app: &str) -> Result<(), TemplateError> {
    let ok = (1..=64).contains(&app.len())
        && app.starts_with(|c: char| c.is_ascii_lowercase())
        && app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(TemplateError::BadName(app.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_a_manifest_named_after_the_app_and_a_readme() {
        for template in all() {
            let files = template.render("my-app").expect("renders");
            let manifest = files
                .iter()
                .find(|f| f.path == "outpost.toml")
                .unwrap_or_else(|| panic!("{} has no outpost.toml", template.name));
            assert!(
                manifest.text.contains(r#"name = "my-app""#),
                "{}",
                template.name
            );
            assert!(
                files.iter().any(|f| f.path == "README.md"),
                "{}",
                template.name
            );
            assert!(
                files.iter().any(|f| f.path.starts_with("tests/")),
                "{} carries no component test",
                template.name
            );
            // Source files may hold `{{` (format strings); manifests, tests and READMEs may not.
            for file in files
                .iter()
                .filter(|f| f.path.ends_with(".toml") || f.path.ends_with(".md"))
            {
                assert!(
                    !file.text.contains("{{"),
                    "{}: {} keeps a placeholder",
                    template.name,
                    file.path
                );
            }
        }
    }

    #[test]
    fn rust_templates_name_the_wasm_file_as_cargo_does() {
        let files = find("rust-watcher")
            .expect("exists")
            .render("my-app")
            .expect("renders");
        let manifest = &files
            .iter()
            .find(|f| f.path == "outpost.toml")
            .expect("manifest")
            .text;
        assert!(manifest.contains("release/my_app.wasm"), "{manifest}");
        assert!(
            files
                .iter()
                .any(|f| f.path == "vendor/outpost-sdk/src/lib.rs")
        );
        assert!(
            files
                .iter()
                .any(|f| f.path == "vendor/outpost-abi/src/lib.rs")
        );
    }

    #[test]
    fn unknown_templates_and_bad_names_are_refused() {
        assert!(matches!(find("cobol"), Err(TemplateError::Unknown { .. })));
        let template = find("c").expect("exists");
        for bad in ["", "My-App", "1app", "a_b", &"a".repeat(65)] {
            assert_eq!(
                template.render(bad),
                Err(TemplateError::BadName(bad.to_string()))
            );
        }
    }
}
