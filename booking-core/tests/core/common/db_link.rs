//! A TCP link between the service and PostgreSQL that a test can break the
//! ways a failover breaks it: `cut` (the leader's host died: open
//! connections reset, new ones refused), `stall` (the leader is paused: open
//! connections and new ones go silent) and `restore` (a new leader answers).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Up,
    Cut,
    Stalled,
}

pub struct DbLink {
    pub addr: SocketAddr,
    state: watch::Sender<Link>,
    /// Bumped at every cut: connections made before it end.
    generation: Arc<Mutex<u64>>,
}

impl DbLink {
    /// Listens on a free port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> DbLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, _) = watch::channel(Link::Up);
        let generation = Arc::new(Mutex::new(0u64));
        let (tx, gen_) = (state.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut link = tx.subscribe();
                let born = *gen_.lock().unwrap();
                let gen_ = gen_.clone();
                tokio::spawn(async move {
                    // A stalled link holds the connection without a word.
                    while *link.borrow() == Link::Stalled {
                        if link.changed().await.is_err() {
                            return;
                        }
                    }
                    if *link.borrow() == Link::Cut {
                        refuse(client).await;
                        return;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    forward(client, server, link, born, gen_).await;
                });
            }
        });
        DbLink {
            addr,
            state,
            generation,
        }
    }

    pub fn cut(&self) {
        *self.generation.lock().unwrap() += 1;
        self.state.send_replace(Link::Cut);
    }

    pub fn stall(&self) {
        self.state.send_replace(Link::Stalled);
    }

    pub fn restore(&self) {
        self.state.send_replace(Link::Up);
    }
}

/// Resets the connection (SO_LINGER 0), as a dead host's neighbour would.
async fn refuse(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

async fn forward(
    client: TcpStream,
    server: TcpStream,
    mut link: watch::Receiver<Link>,
    born: u64,
    generation: Arc<Mutex<u64>>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        let state = *link.borrow();
        if state == Link::Cut || *generation.lock().unwrap() != born {
            // Both sides reset: the service sees its connection die.
            let client = cr.reunite(cw).ok();
            if let Some(c) = client {
                refuse(c).await;
            }
            return;
        }
        if state == Link::Stalled {
            if link.changed().await.is_err() {
                return;
            }
            continue;
        }
        use tokio::io::AsyncReadExt;
        tokio::select! {
            n = cr.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if sw.write_all(&up[..n]).await.is_err() { return },
            },
            n = sr.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
            },
            changed = link.changed() => if changed.is_err() { return },
        }
    }
}
