//! `outpost status`, and the one way `status`, `kv list|get` and `outbox list` read a device:
//! ask the agent running on the state directory through its control socket, or, when none
//! answers, make the same response line from the state file (`outpost::control::respond`),
//! so the output is the same either way. The agent renders the text; the CLI prints it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use outpost::control::client::{self, ClientError};
use outpost::control::protocol::{self, Format, ProtocolError, Request};

/// `outpost status`
#[derive(clap::Args)]
pub struct StatusArgs {
    /// State directory.
    #[arg(long, default_value = ".outpost")]
    data: PathBuf,
    /// Print the status as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What to print for `request`: asked of the agent on `data`, or answered from its state file
/// when no agent answers. `json` asks for the JSON response, else the text for people. An
/// error reply is an error (one line).
pub fn ask(data: &Path, request: Request, json: bool) -> anyhow::Result<String> {
    let format = if json { Format::Json } else { Format::Text };
    match client::ask(data, &request, format) {
        Ok(Some(out)) => Ok(out),
        Ok(None) => {
            let store = super::open_store(data)?;
            let line = outpost::control::respond(&store, None, &request, format, data);
            protocol::decode_response(&line).map_err(|e| anyhow::anyhow!("{e}"))
        }
        Err(ClientError::Protocol {
            source: ProtocolError::Refused(message),
            ..
        }) => anyhow::bail!("{message}"),
        // As text: converting the error itself would add code for its type to the binary.
        Err(error) => anyhow::bail!("{error}"),
    }
}

/// Runs `outpost status`.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    print!("{}", ask(&args.data, Request::Status, args.json)?);
    Ok(ExitCode::SUCCESS)
}
