//! Quick comparison of embedded stores for DriftDB's access pattern: group-committed batches of appends/replaces
//! keyed (room, key, seq), durable commits, prefix scan of one room, delete of one room.
use redb::ReadableDatabase;
use std::time::{Duration, Instant};

const ROOMS: u64 = 200;
const KEYS: u64 = 4;
const VALUE: usize = 100;

fn key(room: u64, k: u64, seq: u64) -> Vec<u8> {
    let mut v = format!("room{room:06}\0k{k}\0").into_bytes();
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

trait Store {
    fn name(&self) -> &'static str;
    /// One durable batch: (key, value, replace = delete the key's stream first).
    fn commit(&mut self, batch: &[(u64, u64, u64, bool)]);
    fn scan_room(&mut self, room: u64) -> usize;
    fn delete_room(&mut self, room: u64);
}

struct Redb(redb::Database);
const T: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("e");
impl Store for Redb {
    fn name(&self) -> &'static str {
        "redb 3.1"
    }
    fn commit(&mut self, batch: &[(u64, u64, u64, bool)]) {
        let tx = self.0.begin_write().unwrap();
        {
            let mut t = tx.open_table(T).unwrap();
            let val = vec![7u8; VALUE];
            for &(r, k, s, replace) in batch {
                if replace {
                    let (lo, hi) = (key(r, k, 0), key(r, k, u64::MAX));
                    t.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false).unwrap();
                }
                t.insert(key(r, k, s).as_slice(), val.as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn scan_room(&mut self, room: u64) -> usize {
        let tx = self.0.begin_read().unwrap();
        let t = tx.open_table(T).unwrap();
        let (lo, hi) = (format!("room{room:06}\0").into_bytes(), format!("room{room:06}\x01").into_bytes());
        t.range(lo.as_slice()..hi.as_slice()).unwrap().count()
    }
    fn delete_room(&mut self, room: u64) {
        let tx = self.0.begin_write().unwrap();
        {
            let mut t = tx.open_table(T).unwrap();
            let (lo, hi) = (format!("room{room:06}\0").into_bytes(), format!("room{room:06}\x01").into_bytes());
            t.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false).unwrap();
        }
        tx.commit().unwrap();
    }
}

struct Sqlite(rusqlite::Connection);
impl Store for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite 3 (rusqlite 0.37, WAL, synchronous=FULL)"
    }
    fn commit(&mut self, batch: &[(u64, u64, u64, bool)]) {
        let tx = self.0.transaction().unwrap();
        {
            let mut del = tx.prepare_cached("DELETE FROM e WHERE room=?1 AND k=?2").unwrap();
            let mut ins = tx.prepare_cached("INSERT INTO e(room,k,seq,v) VALUES (?1,?2,?3,?4)").unwrap();
            let val = vec![7u8; VALUE];
            for &(r, k, s, replace) in batch {
                if replace {
                    del.execute((r, k)).unwrap();
                }
                ins.execute((r, k, s, &val)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn scan_room(&mut self, room: u64) -> usize {
        let mut st = self.0.prepare_cached("SELECT v FROM e WHERE room=?1 ORDER BY k, seq").unwrap();
        st.query_map([room], |r| r.get::<_, Vec<u8>>(0)).unwrap().count()
    }
    fn delete_room(&mut self, room: u64) {
        self.0.execute("DELETE FROM e WHERE room=?1", [room]).unwrap();
    }
}

struct Fjall(fjall::Keyspace, fjall::PartitionHandle);
impl Store for Fjall {
    fn name(&self) -> &'static str {
        "fjall 2.11 (PersistMode::SyncAll)"
    }
    fn commit(&mut self, batch: &[(u64, u64, u64, bool)]) {
        let mut b = self.0.batch();
        let val = vec![7u8; VALUE];
        for &(r, k, s, replace) in batch {
            if replace {
                let (lo, hi) = (key(r, k, 0), key(r, k, u64::MAX));
                for kv in self.1.range(lo..hi) {
                    b.remove(&self.1, kv.unwrap().0);
                }
            }
            b.insert(&self.1, key(r, k, s), val.clone());
        }
        b.commit().unwrap();
        self.0.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    fn scan_room(&mut self, room: u64) -> usize {
        self.1.prefix(format!("room{room:06}\0")).count()
    }
    fn delete_room(&mut self, room: u64) {
        let mut b = self.0.batch();
        for kv in self.1.prefix(format!("room{room:06}\0")) {
            b.remove(&self.1, kv.unwrap().0);
        }
        b.commit().unwrap();
        self.0.persist(fjall::PersistMode::SyncAll).unwrap();
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}

fn run(s: &mut dyn Store, dir: &std::path::Path) {
    let mut seq = 0u64;
    for (batch_size, replace_share) in [(1usize, 0u64), (16, 0), (128, 0), (16, 2)] {
        let mut lat = Vec::new();
        let start = Instant::now();
        let batches: usize = if batch_size == 1 { 300 } else { 150 };
        for b in 0..batches {
            let batch: Vec<_> = (0..batch_size as u64)
                .map(|i| {
                    let b = b as u64;
                    seq += 1;
                    let replace = replace_share > 0 && (i + b) % replace_share == 0;
                    (seq % ROOMS, seq % KEYS, seq, replace)
                })
                .collect();
            let t = Instant::now();
            s.commit(&batch);
            lat.push(t.elapsed());
        }
        let el = start.elapsed().as_secs_f64();
        println!(
            "| {} | batch {batch_size}{} | {:.2} | {:.2} | {:.0} |",
            s.name(),
            if replace_share > 0 { ", half replace" } else { "" },
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            (batches * batch_size) as f64 / el
        );
    }
    let t = Instant::now();
    let mut n = 0;
    for r in 0..ROOMS {
        n += s.scan_room(r);
    }
    println!(
        "| {} | scan all {ROOMS} rooms ({n} entries) | {:.3} ms/room | | |",
        s.name(),
        t.elapsed().as_secs_f64() * 1e3 / ROOMS as f64
    );
    let t = Instant::now();
    for r in 0..20 {
        s.delete_room(r);
    }
    println!("| {} | delete a room (durable) | {:.2} ms | | |", s.name(), t.elapsed().as_secs_f64() * 1e3 / 20.0);
    let size: u64 = walk(dir);
    println!("| {} | size on disk | {} KiB | | |", s.name(), size / 1024);
}

fn walk(p: &std::path::Path) -> u64 {
    if p.is_file() {
        return p.metadata().unwrap().len();
    }
    std::fs::read_dir(p).map(|d| d.map(|e| walk(&e.unwrap().path())).sum()).unwrap_or(0)
}

fn main() {
    let base = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("/tmp/storecmp-data".into()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    println!("| store | workload | commit p50 ms | commit p99 ms | records/s |\n| --- | --- | --- | --- | --- |");
    let d = base.join("redb");
    std::fs::create_dir_all(&d).unwrap();
    run(&mut Redb(redb::Database::create(d.join("db.redb")).unwrap()), &d);
    let d = base.join("sqlite");
    std::fs::create_dir_all(&d).unwrap();
    let c = rusqlite::Connection::open(d.join("db.sqlite")).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE e(room INTEGER, k INTEGER, seq INTEGER, v BLOB, PRIMARY KEY(room,k,seq)) WITHOUT ROWID;").unwrap();
    run(&mut Sqlite(c), &d);
    let d = base.join("fjall");
    let ks = fjall::Config::new(&d).open().unwrap();
    let p = ks.open_partition("e", Default::default()).unwrap();
    run(&mut Fjall(ks, p), &d);
}
