//! The open-file limit: every connection is a file descriptor, on both ends, so a run with tens of thousands of
//! connections needs more than the usual soft limit of 1,024 (and, at 20,000 connections, more than many hard limits).

/// Raises this process's `RLIMIT_NOFILE` to at least `wanted`: the soft limit up to the hard one, and the hard one too
/// where the process may (root, or `CAP_SYS_RESOURCE`). Returns the soft limit now in force.
pub fn raise_open_files(wanted: u64) -> std::io::Result<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft >= wanted {
        return Ok(soft);
    }
    if hard < wanted && rlimit::Resource::NOFILE.set(wanted, wanted).is_ok() {
        return Ok(wanted);
    }
    rlimit::increase_nofile_limit(wanted.min(hard))
}
