//! Upgraded connections (WebSocket and other `Connection: upgrade` protocols): once both sides
//! switched protocols, bytes are copied both ways until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::access::Access;
use crate::tracker::{self, Phase, Tracker};

/// Joins the client's and the instance's upgraded connections in a tracked task.
pub(crate) fn spawn(client: OnUpgrade, instance: OnUpgrade, mut access: Access, tracker: &Tracker) {
    let token = tracker.token();
    let mut phase = tracker.phase();
    tokio::spawn(async move {
        let _token = token;
        let run = async {
            let (client, instance) = match tokio::try_join!(client, instance) {
                Ok(pair) => pair,
                Err(e) => {
                    access.error = Some(format!("upgrade failed: {e}"));
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut instance = TokioIo::new(instance);
            match tokio::io::copy_bidirectional(&mut client, &mut instance).await {
                Ok((_up, down)) => access.bytes = down,
                Err(e) => access.error = Some(format!("tunnel closed: {e}")),
            }
        };
        tokio::select! {
            () = run => {}
            () = tracker::reached(&mut phase, Phase::Closing) => {}
        }
    });
}
