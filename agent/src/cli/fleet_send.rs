//! `outpost fleet send`: one command to an app on one device or on every device of a group,
//! on the topics `mqtt` triggers on `{commands}/…` receive (see `outpost::identity`).

use std::process::ExitCode;

use anyhow::ensure;
use outpost::fleet::topics::Target;
use outpost::identity::DeviceIdentity;
use outpost_hal::mqtt::RumqttcTransport;

/// The topic a command `subtopic` for `app` goes to, after checking the app is one plain topic
/// level and the subtopic plain levels, without wildcards (the target's name is checked by
/// its flags).
pub fn command_topic(
    prefix: &str,
    target: &Target,
    app: &str,
    subtopic: &str,
) -> anyhow::Result<String> {
    let plain = |what: &str, text: &str, levels: bool| -> anyhow::Result<()> {
        ensure!(
            !text.is_empty()
                && !text.contains(['+', '#', '\0'])
                && (levels || !text.contains('/'))
                && !text.starts_with('/')
                && !text.ends_with('/'),
            "{what} '{text}' must be a plain topic {} without wildcards",
            if levels { "path" } else { "level" }
        );
        Ok(())
    };
    plain("app", app, false)?;
    plain("subtopic", subtopic, true)?;
    Ok(match target {
        Target::Device(device) => DeviceIdentity::device_command(prefix, device, app, subtopic),
        Target::Group(group) => DeviceIdentity::group_command(prefix, group, app, subtopic),
    })
}

/// Publishes `payload` to `topic` (QoS 1, not retained: a command is for the devices connected
/// or holding a persistent session now, not for devices that join later) and waits for the
/// broker's acknowledgement.
pub async fn send(
    mut transport: RumqttcTransport,
    broker: &super::Broker,
    topic: &str,
    payload: &[u8],
) -> anyhow::Result<ExitCode> {
    let (mut client, mut connection) = super::connect(&mut transport, broker).await?;
    let message = [(topic.to_string(), payload)];
    super::publish::send_qos1(
        &mut client,
        &mut connection,
        broker,
        &message,
        false,
        |_| {},
    )
    .await?;
    println!("sent {} bytes to {topic}", payload.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_scheme_and_refuse_wildcards() {
        assert_eq!(
            command_topic(
                "outpost",
                &Target::Device("pi-7".into()),
                "commander",
                "led/blink"
            )
            .expect("valid"),
            "outpost/pi-7/commands/commander/led/blink"
        );
        assert_eq!(
            command_topic(
                "outpost",
                &Target::Group("north".into()),
                "commander",
                "led"
            )
            .expect("valid"),
            "outpost/fleet/north/commands/commander/led"
        );
        for (target, app, sub) in [
            (Target::Group("north".into()), "a/b", "x"),
            (Target::Group("north".into()), "a", "x/#"),
            (Target::Device("pi".into()), "a", ""),
            (Target::Device("pi".into()), "+", "x"),
        ] {
            assert!(command_topic("outpost", &target, app, sub).is_err());
        }
    }
}
