//! At TRACE, tungstenite logs every WebSocket frame, the authenticate message with its secret
//! included. The streams notice that level and warn once, naming the filter to set. (One
//! test in this file: the logger is process-wide.)

mod support_stream;

use std::sync::Mutex;

use connect_trade::{
    PlatformCredentials,
    stream::{BrokerageStream, StreamConfig},
};
use support_stream::{Server, within};

/// Keeps every record: (level, target, text).
struct Recorder(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push((
            record.level(),
            record.target().to_string(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

#[tokio::test]
async fn trace_logging_of_tungstenite_is_warned_about_once() {
    log::set_logger(&RECORDER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let mut server = Server::start().await;
    for _ in 0..2 {
        let connecting = tokio::spawn(
            BrokerageStream::builder(PlatformCredentials::new("client-1", "s3cret"))
                .url(server.url())
                .config(StreamConfig::default())
                .connect(),
        );
        let mut conn = server.accept().await;
        conn.handshake().await;
        let stream = within("connect()", connecting).await.unwrap().unwrap();
        drop(stream);
        conn.expect_close().await;
    }
    let records = RECORDER.0.lock().unwrap().clone();
    let warnings: Vec<&(log::Level, String, String)> = records
        .iter()
        .filter(|(level, target, _)| {
            *level == log::Level::Warn && target.starts_with("connect_trade")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "warned once: {warnings:?}");
    let text = &warnings[0].2;
    assert!(text.contains("tungstenite=debug"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    // What the warning is about: the library's frame dump carries the secret.
    assert!(
        records
            .iter()
            .any(|(_, target, text)| target.starts_with("tungstenite") && text.contains("s3cret")),
        "tungstenite did not log the frame: the premise of the warning changed"
    );
}
