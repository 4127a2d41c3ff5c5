//! `ringwire serve`'s WebSocket handler ([`ServeHandler`]): echo on every path, and on
//! `/broadcast` every message relayed to every connection on that path (on every core, the
//! sender included). Both drivers; tungstenite as the client.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringwire::runtime::{DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::ws::{BROADCAST_PATH, ServeHandler, WsServer, WsServerConfig};
use tungstenite::Message;

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(broadcast_path_relays_to_every_subscriber_and_other_paths_echo);

fn start(d: DriverChoice) -> (ServerHandle, SocketAddr) {
    let rt = RuntimeConfig {
        driver: d,
        threads: 2,
        ..Default::default()
    };
    let mut b = ServerBuilder::new(rt);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let cfg = Arc::new(WsServerConfig::default());
    let s = b
        .start(move |_| WsServer::new(ServeHandler::default(), cfg.clone()))
        .unwrap();
    let a = s.local_addrs()[0];
    (s, a)
}

type Client = tungstenite::WebSocket<common::Retry>;

fn client(addr: SocketAddr, path: &str) -> Client {
    common::ws_client(addr, path, Duration::from_secs(10))
}

fn next_data(c: &mut Client) -> Message {
    loop {
        match c.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            r => return r.unwrap(),
        }
    }
}

fn broadcast_path_relays_to_every_subscriber_and_other_paths_echo(d: DriverChoice) {
    let (_s, addr) = start(d);
    // Enough subscribers that both cores very likely hold some (accepts are spread by the kernel).
    let mut subs: Vec<Client> = (0..6).map(|_| client(addr, BROADCAST_PATH)).collect();
    let mut other = client(addr, "/chat");

    subs[0].send(Message::binary(&b"fan-out"[..])).unwrap();
    for c in subs.iter_mut() {
        assert_eq!(next_data(c), Message::binary(&b"fan-out"[..]));
    }
    subs[3].send(Message::text("second")).unwrap();
    for c in subs.iter_mut() {
        assert_eq!(next_data(c), Message::text("second"));
    }
    // Another path only echoes, and saw none of the broadcasts: the echo comes first.
    other.send(Message::text("just me")).unwrap();
    assert_eq!(next_data(&mut other), Message::text("just me"));
}
