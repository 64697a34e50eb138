//! mediatorctl: the operator's tool for a running mediatord, over the gRPC control API on the
//! daemon's Unix socket. Human tables by default, `--output plain` for `cut` and `awk`,
//! `--output json` (or `--json`) for scripts; exit code 0 on success, non-zero with one line a
//! person can act on otherwise.

mod cli;
mod failure;
mod format;
mod health;
mod man;
mod moderate;
mod render;

use anyhow::{anyhow, bail, Context, Result};
use clap::{CommandFactory, Parser};
use cli::*;
use mediator_control::v1::*;
use mediator_control::{defaults, ControlClient};
use render::Format;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

fn socket_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.socket {
        return p.clone();
    }
    let packaged = Path::new(defaults::PACKAGED_SOCKET);
    let quick = defaults::quick_start_socket();
    if !packaged.exists() && quick.exists() {
        return quick;
    }
    packaged.to_path_buf()
}

async fn connect(path: &Path) -> Result<ControlClient<Channel>> {
    let p = path.to_path_buf();
    // The URI is required by the HTTP/2 layer but unused: the connector dials the socket.
    let channel = Endpoint::try_from("http://mediatord.invalid")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = p.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(p).await?,
                ))
            }
        }))
        .await
        .map_err(|e| connect_error(path, &e))?;
    Ok(ControlClient::new(channel))
}

/// Turns a connection failure into one actionable line.
fn connect_error(path: &Path, e: &tonic::transport::Error) -> anyhow::Error {
    use failure::{fail, Kind};
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::NotFound => fail(
                    Kind::NotRunning,
                    format!(
                        "cannot reach mediatord at {}: no such socket (is it running? is --socket right?)",
                        path.display()
                    ),
                ),
                std::io::ErrorKind::PermissionDenied => fail(
                    Kind::Denied,
                    format!(
                        "cannot reach mediatord at {}: permission denied: add yourself to group mediatord (or the daemon's --control-group)",
                        path.display()
                    ),
                ),
                std::io::ErrorKind::ConnectionRefused => fail(
                    Kind::NotRunning,
                    format!(
                        "cannot reach mediatord at {}: connection refused: is it running?",
                        path.display()
                    ),
                ),
                _ => anyhow!("cannot reach mediatord at {}: {io}", path.display()),
            };
        }
        src = s.source();
    }
    anyhow!("cannot reach mediatord at {}: {e}", path.display())
}

/// Turns a call failure into one actionable line, with its kind.
fn call_error(path: &Path, s: tonic::Status) -> anyhow::Error {
    let kind = failure::Kind::of_status(s.code());
    match s.code() {
        tonic::Code::Unavailable => failure::fail(
            kind,
            format!(
                "cannot reach mediatord at {}: {} (is it running?)",
                path.display(),
                s.message()
            ),
        ),
        _ => failure::fail(kind, s.message()),
    }
}

fn main() {
    let cli = Cli::parse();
    let format = cli.format().unwrap_or_else(|e| e.exit());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Cmd::Health {
        writer_stall,
        min_free_percent,
    } = cli.cmd
    {
        let t = health::Thresholds {
            writer_stall: std::time::Duration::from_secs(writer_stall),
            min_free_percent,
        };
        let code = match rt.block_on(health_cmd(&cli, &t, format)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("mediatorctl: {e:#}");
                health::ExitCode::Error
            }
        };
        std::process::exit(code as i32);
    }
    if let Err(e) = rt.block_on(run(cli, format)) {
        std::process::exit(failure::report(&e, format == Format::Json));
    }
}

/// `mediatorctl health`: prints the verdict and returns its exit code.
async fn health_cmd(cli: &Cli, t: &health::Thresholds, format: Format) -> Result<health::ExitCode> {
    let path = socket_path(cli);
    let print = |out: render::Output| print_output(&out, format);
    // A plain connect first tells "nobody there" (exit 3) from "not allowed" (exit 1).
    if let Err(e) = std::os::unix::net::UnixStream::connect(&path) {
        use std::io::ErrorKind::{ConnectionRefused, NotFound};
        if matches!(e.kind(), NotFound | ConnectionRefused) {
            print(health::not_running(&format!("{}: {e}", path.display())))?;
            return Ok(health::ExitCode::NotRunning);
        }
    }
    let mut c = connect(&path).await?;
    let reply = match c.health(HealthRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unavailable => {
            print(health::not_running(s.message()))?;
            return Ok(health::ExitCode::NotRunning);
        }
        Err(s) => return Err(call_error(&path, s)),
    };
    let (out, code) = health::report(&reply, t);
    print(out)?;
    Ok(code)
}

async fn run(cli: Cli, format: Format) -> Result<()> {
    match &cli.cmd {
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "mediatorctl", &mut buf);
            return emit(&buf);
        }
        Cmd::Man { dir: None } => return emit(&man::main_page(Cli::command())?),
        Cmd::Man { dir: Some(dir) } => {
            let n = man::write_all(Cli::command(), dir)?;
            eprintln!("{n} man pages written to {}", dir.display());
            return Ok(());
        }
        _ => {}
    }
    let path = socket_path(&cli);
    let mut c = connect(&path).await?;
    let err = |s| call_error(&path, s);
    if let Cmd::Backup {
        path: dest,
        include_key,
    } = &cli.cmd
    {
        if dest.as_os_str() == "-" {
            return backup_to_stdout(&mut c, *include_key).await.map_err(|e| {
                match e.downcast::<tonic::Status>() {
                    Ok(s) => err(s),
                    Err(e) => e,
                }
            });
        }
        if *include_key {
            return Err(failure::fail(
                failure::Kind::Invalid,
                "--include-key streams an archive: use 'backup - --include-key > FILE'",
            ));
        }
    }
    let out = match cli.cmd {
        Cmd::Status => format::status(&c.status(StatusRequest {}).await.map_err(err)?.into_inner()),
        Cmd::Chats(ChatsCmd::List {
            limit,
            owner,
            sort,
            desc,
        }) => {
            let owner = match owner {
                Some(h) => hex::decode(&h)
                    .ok()
                    .filter(|k| k.len() == 32)
                    .ok_or_else(|| {
                        failure::fail(failure::Kind::Invalid, "--owner must be 64 hex characters")
                    })?,
                None => Vec::new(),
            };
            let sort = match sort {
                SortBy::Id => ChatSort::Id,
                SortBy::Created => ChatSort::Created,
                SortBy::Members => ChatSort::Members,
                SortBy::Messages => ChatSort::Messages,
                SortBy::Activity => ChatSort::LastActivity,
            };
            let mut all = Vec::new();
            let mut offset = 0;
            let mut total = 0;
            loop {
                let want = limit.map(|l| l.saturating_sub(all.len() as u64));
                if want == Some(0) {
                    break;
                }
                let r = c
                    .list_chats(ListChatsRequest {
                        limit: want.map_or(0, |w| w.min(u64::from(u32::MAX)) as u32),
                        offset,
                        owner: owner.clone(),
                        sort: sort as i32,
                        descending: desc,
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                total = r.total;
                all.extend(r.chats);
                if r.next_offset == 0 {
                    break;
                }
                offset = r.next_offset;
            }
            format::chats(&all, total)
        }
        Cmd::Chats(ChatsCmd::Show { id }) => format::chat(
            &c.show_chat(ShowChatRequest { id })
                .await
                .map_err(err)?
                .into_inner(),
        ),
        Cmd::Chats(ChatsCmd::Delete { id, yes }) => {
            moderate::confirm(&format!("Delete chat {id} and all its messages?"), yes)?;
            let r = c.delete_chat(DeleteChatRequest { chat_id: id }).await;
            moderate::done("chat deleted", r.map_err(err)?.into_inner().changed)
        }
        Cmd::Members(MembersCmd::Ban { chat_id, key, yes }) => {
            let k = moderate::parse_key(&key)?;
            moderate::confirm(&format!("Ban {key} from chat {chat_id}?"), yes)?;
            let r = c.ban_member(MemberRequest { chat_id, key: k }).await;
            moderate::done("banned", r.map_err(err)?.into_inner().changed)
        }
        Cmd::Members(MembersCmd::Unban { chat_id, key }) => {
            let k = moderate::parse_key(&key)?;
            let r = c.unban_member(MemberRequest { chat_id, key: k }).await;
            moderate::done("unbanned", r.map_err(err)?.into_inner().changed)
        }
        Cmd::Members(MembersCmd::Remove { chat_id, key, yes }) => {
            let k = moderate::parse_key(&key)?;
            moderate::confirm(&format!("Remove {key} from chat {chat_id}?"), yes)?;
            let r = c.remove_member(MemberRequest { chat_id, key: k }).await;
            moderate::done("removed", r.map_err(err)?.into_inner().changed)
        }
        Cmd::Members(MembersCmd::Role { chat_id, key, role }) => {
            let k = moderate::parse_key(&key)?;
            let r = c
                .set_role(SetRoleRequest {
                    chat_id,
                    key: k,
                    role,
                })
                .await;
            moderate::done("role set", r.map_err(err)?.into_inner().changed)
        }
        Cmd::Messages(MessagesCmd::Delete {
            chat_id,
            message_id,
            yes,
        }) => {
            moderate::confirm(
                &format!("Delete message {message_id} of chat {chat_id}?"),
                yes,
            )?;
            let r = c
                .delete_message(DeleteMessageRequest {
                    chat_id,
                    message_id,
                })
                .await;
            moderate::done("message deleted", r.map_err(err)?.into_inner().changed)
        }
        Cmd::Messages(MessagesCmd::Purge {
            older_than,
            chat,
            yes,
        }) => {
            let whose = chat.map_or("every chat".to_string(), |id| format!("chat {id}"));
            moderate::confirm(
                &format!("Remove the messages of {whose} older than {older_than}s?"),
                yes,
            )?;
            let r = c
                .purge_messages(PurgeMessagesRequest {
                    older_than_secs: older_than,
                    chat_id: chat,
                })
                .await
                .map_err(err)?
                .into_inner();
            moderate::purged(&r)
        }
        Cmd::Keys(b) => moderate::blocks(&mut c, "key", b).await.map_err(&err)?,
        Cmd::Sources(b) => moderate::blocks(&mut c, "source", b).await.map_err(&err)?,
        Cmd::Sessions(SessionsCmd::Kick { id, key }) => {
            let key = key.as_deref().map(moderate::parse_key).transpose()?;
            let r = c
                .kick_sessions(KickRequest {
                    session_id: id.unwrap_or(0),
                    key: key.unwrap_or_default(),
                })
                .await
                .map_err(err)?
                .into_inner();
            moderate::kicked(r.sessions_ended)
        }
        Cmd::Members(MembersCmd::List { chat_id, limit }) => {
            let mut all = Vec::new();
            let mut offset = 0;
            loop {
                let want = limit.map(|l| l.saturating_sub(all.len() as u64));
                if want == Some(0) {
                    break;
                }
                let r = c
                    .list_members(ListMembersRequest {
                        chat_id,
                        limit: want.map_or(0, |w| w.min(u64::from(u32::MAX)) as u32),
                        offset,
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                all.extend(r.members);
                if r.next_offset == 0 {
                    break;
                }
                offset = r.next_offset;
            }
            format::members(&all)
        }
        Cmd::Subscribers(SubscribersCmd::List) => format::subscribers(
            &c.list_subscribers(ListSubscribersRequest {})
                .await
                .map_err(err)?
                .into_inner(),
        ),
        Cmd::Nonces(NoncesCmd::Purge { older_than }) => format::purge(
            &c.purge_nonces(PurgeNoncesRequest {
                older_than_secs: older_than.unwrap_or(0),
            })
            .await
            .map_err(err)?
            .into_inner(),
        ),
        Cmd::Peers(PeersCmd::List) => format::peers(
            &c.list_peers(ListPeersRequest {})
                .await
                .map_err(err)?
                .into_inner(),
        ),
        Cmd::Audit(AuditCmd::List { limit, before }) => format::audit(
            &c.list_audit(ListAuditRequest {
                limit: limit.unwrap_or(0),
                before: before.unwrap_or(0),
            })
            .await
            .map_err(err)?
            .into_inner()
            .entries,
        ),
        Cmd::Backup { path: dest, .. } => {
            let dest = if dest.is_absolute() {
                dest
            } else {
                std::env::current_dir()?.join(dest)
            };
            if dest.exists() {
                bail!("{} exists; choose a new file", dest.display());
            }
            format::backup(
                &dest,
                &c.backup(BackupRequest {
                    path: dest.display().to_string(),
                })
                .await
                .map_err(err)?
                .into_inner(),
            )
        }
        Cmd::Completions { .. } | Cmd::Man { .. } | Cmd::Health { .. } => {
            unreachable!("handled above")
        }
    };
    print_output(&out, format)
}

/// Prints a command's output in `format`; tables are fitted to the terminal or to COLUMNS.
fn print_output(out: &render::Output, format: Format) -> Result<()> {
    let width = match format {
        Format::Table => render::table_width(),
        Format::Plain | Format::Json => None,
    };
    emit(out.render(format, width)?.as_bytes())
}

/// `backup -`: the daemon's streamed copy, written to stdout as it comes.
async fn backup_to_stdout(c: &mut ControlClient<Channel>, include_key: bool) -> Result<()> {
    use std::io::{IsTerminal, Write};
    if std::io::stdout().is_terminal() {
        bail!("refusing to write a database to a terminal: redirect stdout to a file");
    }
    let mut stream = c
        .backup_stream(BackupStreamRequest { include_key })
        .await?
        .into_inner();
    let mut out = std::io::stdout().lock();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.message().await? {
        out.write_all(&chunk.data).context("writing to stdout")?;
        bytes += chunk.data.len() as u64;
    }
    out.flush().context("writing to stdout")?;
    eprintln!(
        "mediatorctl: wrote {bytes} bytes ({})",
        if include_key {
            "an archive of the database and the key"
        } else {
            "the database"
        }
    );
    Ok(())
}

/// Writes the whole output to stdout. A reader that has gone away (`mediatorctl status | head
/// -1`, `grep -q`) is not an error of ours: the rest of the output is dropped quietly and the
/// command still succeeds, as for any Unix filter; other write errors are reported.
fn emit(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}
