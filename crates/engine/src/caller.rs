//! Who is acting, for the catalogue's history: the OS user on a laptop, the AWS caller's
//! ARN on AWS profiles (implemented where the AWS context is, in the CLI's profiles).

/// Asked only when something is recorded: on AWS it costs a request.
pub trait Caller: Send + Sync + std::fmt::Debug {
    fn identity(&self) -> CallerIdentity<'_>;
}

/// The caller's identity, once asked.
pub type CallerIdentity<'a> = std::pin::Pin<Box<dyn Future<Output = String> + Send + 'a>>;

/// The operating system's user: as the shell names it (`USER`, `LOGNAME`), else the name
/// of the process's user id (containers often set no `USER`).
#[derive(Debug)]
pub struct OsUser;

impl Caller for OsUser {
    fn identity(&self) -> CallerIdentity<'_> {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|u| !u.is_empty()))
            .or_else(user_of_uid)
            .unwrap_or_else(|| "unknown user".to_string());
        Box::pin(std::future::ready(user))
    }
}

/// The name of the process's real user id, from `/proc/self/status` and `/etc/passwd`;
/// `uid <n>` when it has none.
fn user_of_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}
