//! The floods of the attack scenarios, each from one attacker source ([`ATTACKER_IP`]) until
//! a deadline, counting in [`Cost`] what the attacker got and what it was refused.
//! [`prepare`] makes what a flood needs beforehand (chats with their proofs of work, members,
//! a big message), outside the measured window; [`flood`] runs it.
//!
//! * **sessions**: as many connections as the source may have (and more knocking), and on
//!   them as many sessions as it can hold: guests that never AUTH and throwaway keys.
//! * **budget**: authenticated streams claim a 32 MiB SEND_MESSAGE, send
//!   [`STALL_BYTES`](rounds::STALL_BYTES) and stall; guests claim 32 MiB too.
//! * **unread**: members of the attacker's chat, which holds one big message, ask
//!   GET_MESSAGES_SINCE for it on many sessions and never read.
//! * **nonces**: GET_NONCE in batches on many sessions, for random keys and for the
//!   legitimate user's key.
//! * **garbage**: bad preambles, random bytes, malformed and truncated frames, unknown
//!   commands, reset streams, and junk UDP datagrams.
//! * **member info**: attacker members of the legitimate chat set big member info with
//!   far-future times, over and over.
//! * **invite spam**: the attacker's chats with 200 KiB avatars invite the legitimate key
//!   (before the window, so each of its logins is pushed the invites) and, during it,
//!   SEND_INVITE is repeated to it and to random keys.

use crate::attacker::{self, Cost, ATTACKER_IP, ERROR_PAUSE};
use crate::attacks::AttackSizes;
use crate::legit::{self, Legit};
use crate::rounds::{self, open, open_as, INVITE_DATA};
use anyhow::{anyhow, ensure, Result};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use mediator_client::{connect_from, random_key, Session};
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The sessions flood holds guests only from this fraction of its window on (1/3): a guest
/// counts against the source's 64 unauthenticated sessions, so guests held from the start
/// would keep the attacker's own throwaway keys from authenticating.
pub const GUEST_DELAY_DIVISOR: u32 = 3;
/// Junk UDP datagrams per second during the garbage flood.
pub const UDP_JUNK_RATE: f64 = 20_000.0;
/// Size of the chat avatars of the invite spam.
pub const AVATAR_BYTES: usize = 200 * 1024;
/// Unread-answers sessions per connection at most: each uses a member key once per
/// connection (a second AUTH as the same key from the same address and port replaces the
/// first session).
pub const MAX_UNREAD_PER_CONNECTION: usize = 14;

/// One attack scenario (or none, for the baseline row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    Baseline,
    Sessions,
    Budget,
    Unread,
    Nonces,
    Garbage,
    MemberInfo,
    InviteSpam,
}

impl Attack {
    /// Every row of the table, in order.
    pub const ALL: [Attack; 8] = [
        Attack::Baseline,
        Attack::Sessions,
        Attack::Budget,
        Attack::Unread,
        Attack::Nonces,
        Attack::Garbage,
        Attack::MemberInfo,
        Attack::InviteSpam,
    ];

    /// The attack's key for `--only attacks:KEY`.
    pub fn key(self) -> &'static str {
        match self {
            Attack::Baseline => "baseline",
            Attack::Sessions => "sessions",
            Attack::Budget => "budget",
            Attack::Unread => "unread",
            Attack::Nonces => "nonces",
            Attack::Garbage => "garbage",
            Attack::MemberInfo => "member-info",
            Attack::InviteSpam => "invite-spam",
        }
    }

    /// The row's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Attack::Baseline => "none (honest baseline)",
            Attack::Sessions => "1 sessions",
            Attack::Budget => "2 request budget",
            Attack::Unread => "3 unread answers",
            Attack::Nonces => "4 nonce flood",
            Attack::Garbage => "5 garbage",
            Attack::MemberInfo => "6 member info",
            Attack::InviteSpam => "7 invite spam",
        }
    }
}

/// What every flood works with.
pub struct Env {
    pub addr: SocketAddr,
    pub cost: Arc<Cost>,
    pub sizes: AttackSizes,
    pub legit: Legit,
}

/// What [`prepare`] made for a flood.
pub enum Prepared {
    Nothing,
    /// The attacker's chat holding one big message, and member keys of it.
    Unread {
        chat: i64,
        members: Vec<SigningKey>,
    },
    /// Attacker keys that are members of the legitimate chat.
    Members(Vec<SigningKey>),
    /// The attacker's key and its chats, each of which invited the legitimate key.
    Invites {
        owner: Box<SigningKey>,
        chats: Vec<i64>,
    },
}

/// An attacker session made with the ordinary client, for setup.
async fn attacker_session(addr: SocketAddr) -> Result<(Session, SigningKey)> {
    let conn = connect_from(ATTACKER_IP, addr)
        .await
        .map_err(|e| anyhow!("attacker connect: {e}"))?;
    let mut s = Session::open(&conn).await.map_err(|e| anyhow!("{e}"))?;
    let key = random_key();
    s.auth(&key)
        .await
        .map_err(|e| anyhow!("attacker AUTH: {e}"))?;
    Ok((s, key))
}

/// Creates what `attack` needs before its window opens.
pub async fn prepare(attack: Attack, env: &Env) -> Result<Prepared> {
    let e = |what: &'static str| move |err: mediator_client::ClientError| anyhow!("{what}: {err}");
    Ok(match attack {
        Attack::Unread => {
            let (mut s, _) = attacker_session(env.addr).await?;
            let chat = s
                .create_chat("hoard", "", None)
                .await
                .map_err(e("CREATE_CHAT"))?;
            s.send_message(chat, 1, &vec![0xa5; env.sizes.big_blob])
                .await
                .map_err(e("big SEND_MESSAGE"))?;
            let members: Vec<SigningKey> = (0..env.sizes.members).map(|_| random_key()).collect();
            for k in &members {
                s.add_user(chat, &k.verifying_key().to_bytes())
                    .await
                    .map_err(e("ADD_USER"))?;
            }
            Prepared::Unread { chat, members }
        }
        Attack::MemberInfo => {
            let mut s = legit::legit_session(env.addr, &env.legit.key).await?;
            let members: Vec<SigningKey> =
                (0..env.sizes.info_members).map(|_| random_key()).collect();
            for k in &members {
                s.add_user(env.legit.chat, &k.verifying_key().to_bytes())
                    .await
                    .map_err(e("ADD_USER"))?;
            }
            Prepared::Members(members)
        }
        Attack::InviteSpam => {
            let (mut s, owner) = attacker_session(env.addr).await?;
            let avatar = vec![0x3c; AVATAR_BYTES];
            let to = env.legit.key.verifying_key().to_bytes();
            let mut chats = Vec::new();
            for i in 0..env.sizes.invite_chats {
                let chat = s
                    .create_chat(&format!("spam {i}"), "free stuff", Some(&avatar))
                    .await
                    .map_err(e("CREATE_CHAT"))?;
                s.send_invite(chat, &to, INVITE_DATA)
                    .await
                    .map_err(e("SEND_INVITE"))?;
                chats.push(chat);
            }
            Prepared::Invites {
                owner: Box::new(owner),
                chats,
            }
        }
        _ => Prepared::Nothing,
    })
}

/// Runs `f` again and again until `until`; a failed round is a local error and a pause.
async fn repeat<F, Fut>(until: Instant, cost: Arc<Cost>, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let body = async {
        loop {
            if f().await.is_err() {
                cost.local_error();
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    };
    let _ = tokio::time::timeout_at(until, body).await;
}

/// Runs `attack` until `until`.
pub async fn flood(attack: Attack, prepared: Prepared, env: &Env, until: Instant) -> Result<()> {
    if attack == Attack::Baseline {
        tokio::time::sleep_until(until).await;
        return Ok(());
    }
    let (addr, cost, sizes) = (env.addr, env.cost.clone(), env.sizes);
    let conns = Arc::new(attacker::connect_many(ATTACKER_IP, addr, sizes.connections, &cost).await);
    ensure!(!conns.is_empty(), "no attacker connection was admitted");
    let n = conns.len();
    let mut set = JoinSet::new();
    match (attack, prepared) {
        (Attack::Sessions, _) => {
            set.spawn(rounds::knock(addr, cost.clone(), until));
            let now = Instant::now();
            let guests_from = now + (until - now) / GUEST_DELAY_DIVISOR;
            for w in 0..sizes.workers {
                let (conns, cost2) = (conns.clone(), cost.clone());
                let guest = w % 2 == 0;
                let mut k = w;
                let work = repeat(until, cost.clone(), move || {
                    k += 1;
                    let (conn, cost) = (conns[k % n].clone(), cost2.clone());
                    async move {
                        let raw = if guest {
                            open(&conn, &cost).await?
                        } else {
                            open_as(&conn, &cost, &random_key()).await?
                        };
                        if let Some(raw) = raw {
                            tokio::spawn(raw.hold(until));
                        }
                        Ok(())
                    }
                });
                set.spawn(async move {
                    if guest {
                        tokio::time::sleep_until(guests_from).await;
                    }
                    work.await
                });
            }
        }
        (Attack::Budget, _) => {
            for w in 0..sizes.sessions {
                let (conn, cost2) = (conns[w % n].clone(), cost.clone());
                let guest = w < sizes.workers / 2;
                set.spawn(repeat(until, cost.clone(), move || {
                    let (conn, cost) = (conn.clone(), cost2.clone());
                    async move { rounds::claim(&conn, &cost, guest, until).await }
                }));
            }
        }
        (Attack::Unread, Prepared::Unread { chat, members }) => {
            let members = Arc::new(members);
            let per_conn = members.len().min(MAX_UNREAD_PER_CONNECTION);
            for c in 0..n.min(sizes.sessions.div_ceil(per_conn)) {
                let (conn, cost, members) = (conns[c].clone(), cost.clone(), members.clone());
                set.spawn(async move {
                    let mut held = Vec::new();
                    let body = async {
                        for key in members.iter().take(per_conn) {
                            match rounds::unread(&conn, &cost, key, chat).await {
                                Ok(Some(raw)) => held.push(raw),
                                Ok(None) => {}
                                Err(_) => cost.local_error(),
                            }
                        }
                        std::future::pending::<()>().await
                    };
                    let _ = tokio::time::timeout_at(until, body).await;
                });
            }
        }
        (Attack::Nonces, _) => {
            let victim = env.legit.key.verifying_key().to_bytes();
            let per_conn = sizes.sessions.div_ceil(n).max(1);
            for c in 0..n {
                let (conn, cost) = (conns[c].clone(), cost.clone());
                set.spawn(async move {
                    let body = rounds::nonces(&conn, &cost, per_conn, victim);
                    let _ = tokio::time::timeout_at(until, body).await;
                });
            }
        }
        (Attack::Garbage, _) => {
            set.spawn(async move {
                let _ = attacker::udp_junk(ATTACKER_IP, addr, UDP_JUNK_RATE, until, cost).await;
            });
            for w in 0..sizes.workers {
                let (conn, cost2) = (conns[w % n].clone(), env.cost.clone());
                let mut variant = w;
                set.spawn(repeat(until, env.cost.clone(), move || {
                    variant += 1;
                    let (conn, cost) = (conn.clone(), cost2.clone());
                    async move {
                        rounds::garbage(&conn, &cost, variant % rounds::GARBAGE_VARIANTS).await?;
                        tokio::time::sleep(rounds::GARBAGE_PAUSE).await;
                        Ok(())
                    }
                }));
            }
        }
        (Attack::MemberInfo, Prepared::Members(members)) => {
            let frame = Bytes::from(rounds::member_info_frame(env.legit.chat, sizes.big_blob));
            for (i, key) in members.iter().enumerate() {
                for copy in 0..sizes.info_sessions_per_member {
                    let conn = conns[(i * sizes.info_sessions_per_member + copy) % n].clone();
                    let (cost2, key, frame) = (cost.clone(), key.clone(), frame.clone());
                    set.spawn(repeat(until, cost.clone(), move || {
                        let (conn, cost, key, frame) =
                            (conn.clone(), cost2.clone(), key.clone(), frame.clone());
                        async move { rounds::member_info(&conn, &cost, &key, frame).await }
                    }));
                }
            }
        }
        (Attack::InviteSpam, Prepared::Invites { owner, chats }) => {
            let victim = env.legit.key.verifying_key().to_bytes();
            let chats = Arc::new(chats);
            for w in 0..sizes.workers.min(n) {
                let (conn, cost2, owner, chats) = (
                    conns[w].clone(),
                    cost.clone(),
                    (*owner).clone(),
                    chats.clone(),
                );
                set.spawn(repeat(until, cost.clone(), move || {
                    let (conn, cost, owner, chats) =
                        (conn.clone(), cost2.clone(), owner.clone(), chats.clone());
                    async move { rounds::invites(&conn, &cost, &owner, &chats, victim).await }
                }));
            }
        }
        (a, _) => return Err(anyhow!("{a:?} was not prepared")),
    }
    while set.join_next().await.is_some() {}
    Ok(())
}
