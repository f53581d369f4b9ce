//! `gantry watch TOPIC`: prints a topic's events as JSON lines, resuming across reconnects.

use std::io::Write;

use anyhow::{Context, bail};
use gantry_types::Topic;
use gantry_types::ws::Cursor;

use super::WatchArgs;
use super::subscription::{Endpoint, Interrupt, Subscription};

/// Parses `EPOCH:POSITION` (the epoch is everything before the last colon).
pub fn parse_cursor(text: &str) -> anyhow::Result<Cursor> {
    let Some((epoch, position)) = text.rsplit_once(':') else {
        bail!("--since must be EPOCH:POSITION (as in a frame's epoch and position), not {text:?}");
    };
    if epoch.is_empty() {
        bail!("--since {text:?} has no epoch");
    }
    let position: i64 = position
        .parse()
        .with_context(|| format!("--since {text:?}: the position is not an integer"))?;
    Ok(Cursor {
        epoch: epoch.to_owned(),
        position,
    })
}

pub async fn run(args: &WatchArgs) -> anyhow::Result<()> {
    let topic: Topic = args.topic.parse().map_err(anyhow::Error::new)?;
    let since = args.since.as_deref().map(parse_cursor).transpose()?;
    let endpoint = Endpoint::new(&args.client)?;
    let mut interrupt = Interrupt::new()?;
    let mut subscription = Subscription::new(endpoint, topic.to_string(), since, "watch");
    let stdout = std::io::stdout();
    loop {
        let frame = tokio::select! {
            () = interrupt.recv() => break,
            frame = subscription.next() => frame?,
        };
        let mut out = stdout.lock();
        let written = writeln!(out, "{}", frame.text).and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            // The reader went away (`gantry watch ... | head`): nothing left to do.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(error) => return Err(error).context("writing to stdout"),
        }
    }
    subscription.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_epoch_and_position() {
        let cursor = parse_cursor("0192-ab:41").unwrap();
        assert_eq!((cursor.epoch.as_str(), cursor.position), ("0192-ab", 41));
        assert_eq!(parse_cursor("a:b:7").unwrap().epoch, "a:b");
        assert!(parse_cursor("41").is_err());
        assert!(parse_cursor(":41").is_err());
        assert!(parse_cursor("e:x").is_err());
    }
}
