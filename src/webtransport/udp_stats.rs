//! What the kernel says about the WebTransport UDP sockets: datagrams it dropped because the receive buffer was full
//! (the `drops` column of `/proc/net/udp` and `/proc/net/udp6`), so `/metrics` shows loss the server never saw.

use std::io;

/// Datagrams the kernel dropped on the UDP sockets bound to `port`, both address families, since they were bound.
pub fn receive_drops(port: u16) -> io::Result<u64> {
    let mut drops = 0;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => drops += drops_on_port(&text, port),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(drops)
}

/// Sums the `drops` column (the last) of the table's rows whose local address is on `port`.
fn drops_on_port(table: &str, port: u16) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let columns: Vec<&str> = row.split_whitespace().collect();
            let local_port = columns.get(1)?.rsplit(':').next()?;
            (u16::from_str_radix(local_port, 16).ok()? == port).then(|| columns.last()?.parse::<u64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::drops_on_port;

    #[test]
    fn drops_are_read_from_the_rows_of_the_port() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  153: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41 2 0000000000000000 17
  154: 0100007F:1F91 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 42 2 0000000000000000 5
";
        assert_eq!(drops_on_port(table, 0x1F90), 17);
        assert_eq!(drops_on_port(table, 1), 0);
    }
}
