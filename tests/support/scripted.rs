//! A loopback HTTP/1.1 server that answers with a script of replies, in order, and records
//! what it received. For what httpmock cannot say: "first 503, then 200", or "close the
//! connection without answering". [`Scripted::respond_with`] answers each request with a
//! function instead, for fakes that keep state (and may hold a reply back).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// One scripted answer.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub enum Reply {
    /// Answer with this status, extra headers and JSON body.
    Json(u16, Vec<(&'static str, String)>, String),
    /// Read the request, then close the connection without answering.
    Close,
}

/// A request as the server received it.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The running server.
pub struct Scripted {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Scripted {
    /// Starts a server answering with `script` in order; once the script is used up, the last
    /// reply is repeated.
    #[allow(dead_code)]
    pub async fn start(script: Vec<Reply>) -> Scripted {
        Self::start_with(script, true).await
    }

    /// Like `start`, but keeps no record of requests (for benchmarks: no growing memory).
    #[allow(dead_code)]
    pub async fn start_unrecorded(script: Vec<Reply>) -> Scripted {
        Self::start_with(script, false).await
    }

    async fn start_with(script: Vec<Reply>, record: bool) -> Scripted {
        Self::listen(Answer::Script(Arc::new(script)), record).await
    }

    /// Starts a server answering each request with `respond(request)` (recorded too).
    #[allow(dead_code)]
    pub async fn respond_with<F, Fut>(respond: F) -> Scripted
    where
        F: Fn(Recorded) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let respond: Respond = Arc::new(move |request| Box::pin(respond(request)));
        Self::listen(Answer::Function(respond), true).await
    }

    async fn listen(answer: Answer, record: bool) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, answer.clone(), recorded.clone(), record));
            }
        });
        Scripted {
            base_url: format!("http://{addr}"),
            requests,
        }
    }

    /// How many requests arrived.
    #[allow(dead_code)]
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

type Respond = Arc<dyn Fn(Recorded) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// How the server answers: a script, or a function of the request.
#[derive(Clone)]
enum Answer {
    Script(Arc<Vec<Reply>>),
    Function(Respond),
}

async fn serve(
    mut socket: TcpStream,
    answer: Answer,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    record: bool,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut socket, &mut buffer).await else {
            return;
        };
        let index = if record {
            let mut all = recorded.lock().unwrap();
            all.push(request.clone());
            all.len() - 1
        } else {
            usize::MAX
        };
        let reply = match &answer {
            Answer::Script(script) => script
                .get(index)
                .or_else(|| script.last())
                .cloned()
                .unwrap_or(Reply::Close),
            Answer::Function(respond) => respond(request).await,
        };
        match reply {
            Reply::Close => return,
            Reply::Json(status, headers, body) => {
                let mut head = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                if socket.write_all(head.as_bytes()).await.is_err()
                    || socket.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[header_end..header_end + length].to_vec();
    buffer.drain(..header_end + length);
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}
