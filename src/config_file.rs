//! `driftdb serve --config driftdb.toml`: a TOML file whose keys are the long names of `serve`'s flags
//! (`max-rooms = 5` is `--max-rooms 5`). A flag or its environment variable wins over the file, the file over the
//! defaults. The known keys are read from the clap definition of [`ServerConfig`], so every new flag is a config key
//! without more work here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};

use crate::config::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: unknown key `{key}` (the keys are the long names of `driftdb serve`'s flags, e.g. `max-rooms`)", path.display())]
    UnknownKey { path: PathBuf, key: String },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: `tls-cert` and `tls-key` go together", path.display())]
    HalfTlsPair { path: PathBuf },
    #[error(transparent)]
    Flags(#[from] clap::Error),
}

/// The flags a setting of the `webtransport` pair replaces: the last one given wins, so a flag on the command line
/// must also silence the file's setting of its opposite.
const OPPOSITE_FLAGS: [(&str, &str); 2] = [("webtransport", "no-webtransport"), ("no-webtransport", "webtransport")];

/// The server settings from parsed `serve` arguments and, when given, a config file.
pub fn resolve(matches: &ArgMatches, file: Option<&Path>) -> Result<ServerConfig, ConfigFileError> {
    let from_flags = ServerConfig::from_arg_matches(matches)?;
    let Some(path) = file else { return Ok(from_flags) };
    let invalid =
        |error: figment::Error| ConfigFileError::Invalid { path: path.to_owned(), message: error.to_string() };

    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.to_owned(), source })?;
    let file_settings: Dict = Figment::from(Toml::string(&text)).extract().map_err(invalid)?;
    let flags = flag_ids_by_key();
    if let Some(key) = file_settings.keys().find(|key| !flags.contains_key(key.as_str())) {
        return Err(ConfigFileError::UnknownKey { path: path.to_owned(), key: key.clone() });
    }

    let mut explicit = explicit_settings(&from_flags, matches, &flags).map_err(|error| invalid(*error))?;
    for (given, opposite) in OPPOSITE_FLAGS {
        if explicit.get(given).is_some_and(|value| value.to_bool() == Some(true)) {
            explicit.entry(opposite.to_owned()).or_insert(Value::from(false));
        }
    }
    let config: ServerConfig = Figment::from(Serialized::defaults(&from_flags))
        .merge(Toml::file_exact(path))
        .merge(Serialized::defaults(explicit))
        .extract()
        .map_err(|error| name_the_bad_key(&from_flags, &file_settings, error))
        .map_err(invalid)?;
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(ConfigFileError::HalfTlsPair { path: path.to_owned() });
    }
    Ok(config)
}

/// Reads a config file over the defaults and the environment, as `driftdb serve --config FILE` would.
pub fn check(path: &Path) -> Result<ServerConfig, ConfigFileError> {
    let matches = serve_command().try_get_matches_from(["serve"])?;
    resolve(&matches, Some(path))
}

/// serde's `flatten` (the limits group) loses the key of a value of the wrong type: find it by trying each setting
/// of the file alone.
fn name_the_bad_key(from_flags: &ServerConfig, file_settings: &Dict, error: figment::Error) -> figment::Error {
    let alone = |key: &String, value: &Value| {
        let setting = Dict::from([(key.clone(), value.clone())]);
        let figment = Figment::from(Serialized::defaults(from_flags)).merge(Serialized::defaults(setting));
        figment.extract::<ServerConfig>().is_ok()
    };
    let culprit = file_settings.iter().find_map(|(key, value)| (!alone(key, value)).then_some(key));
    match culprit {
        Some(key) => figment::Error::from(format!("`{key}`: {error}")),
        None => error,
    }
}

/// `serve`'s arguments alone, as clap defines them.
fn serve_command() -> Command {
    ServerConfig::augment_args(Command::new("serve"))
}

/// Each config key (a flag's long name) with the clap id of its argument.
fn flag_ids_by_key() -> BTreeMap<String, String> {
    let command = serve_command();
    let args = command.get_arguments();
    args.filter_map(|arg| Some((arg.get_long()?.to_owned(), arg.get_id().to_string()))).collect()
}

/// The settings given on the command line or by an environment variable, keyed by their long names.
fn explicit_settings(
    from_flags: &ServerConfig,
    matches: &ArgMatches,
    flags: &BTreeMap<String, String>,
) -> Result<Dict, Box<figment::Error>> {
    let mut all: Dict = Figment::from(Serialized::defaults(from_flags)).extract().map_err(Box::new)?;
    all.retain(|key, _| {
        let source = flags.get(key).and_then(|id| matches.value_source(id));
        matches!(source, Some(ValueSource::CommandLine | ValueSource::EnvVariable))
    });
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_with(flags: &[&str], toml: &str) -> Result<ServerConfig, ConfigFileError> {
        let dir = std::env::temp_dir().join(format!(
            "driftdb-config-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("driftdb.toml");
        std::fs::write(&path, toml).unwrap();
        let matches = serve_command().try_get_matches_from(std::iter::once("serve").chain(flags.iter().copied()))?;
        resolve(&matches, Some(&path))
    }

    #[test]
    fn file_settings_replace_defaults() {
        let config =
            resolve_with(&[], "max-rooms = 5\npublic-url = \"https://db.example.com\"\nhost-name = [\"a.test\"]\n")
                .unwrap();
        assert_eq!(config.limits.max_rooms, 5);
        assert_eq!(config.public_url.as_deref(), Some("https://db.example.com"));
        assert_eq!(config.host_names, ["a.test"]);
        assert_eq!(config.limits.max_keys_per_room, ServerConfig::default().limits.max_keys_per_room);
    }

    #[test]
    fn flags_win_over_the_file() {
        let config =
            resolve_with(&["--max-rooms", "7", "--trust-proxy"], "max-rooms = 5\ntrust-proxy = false\n").unwrap();
        assert_eq!(config.limits.max_rooms, 7);
        assert!(config.trust_proxy);
    }

    #[test]
    fn a_webtransport_flag_wins_over_the_files_opposite_setting() {
        let on = resolve_with(&["--webtransport"], "no-webtransport = true\n").unwrap();
        assert!(on.webtransport_enabled());
        let off = resolve_with(&["--no-webtransport"], "webtransport = true\n").unwrap();
        assert!(!off.webtransport_enabled());
        assert!(!resolve_with(&[], "no-webtransport = true\n").unwrap().webtransport_enabled());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let error = resolve_with(&[], "max-rooms = 5\nmax-roms = 6\n").unwrap_err();
        assert!(matches!(&error, ConfigFileError::UnknownKey { key, .. } if key == "max-roms"), "{error}");
        assert!(error.to_string().contains("unknown key `max-roms`"), "{error}");
        // The field's own name is not a key when its flag is spelt otherwise.
        assert!(matches!(resolve_with(&[], "host_names = []\n"), Err(ConfigFileError::UnknownKey { .. })));
    }

    #[test]
    fn wrong_types_and_bad_toml_name_the_problem() {
        let error = resolve_with(&[], "max-rooms = \"many\"\n").unwrap_err().to_string();
        assert!(error.contains("max-rooms") && error.contains("driftdb.toml"), "{error}");
        let error = resolve_with(&[], "max-rooms = \n").unwrap_err().to_string();
        assert!(error.contains("driftdb.toml"), "{error}");
        let error = resolve_with(&[], "tls-cert = \"c.pem\"\n").unwrap_err();
        assert!(matches!(error, ConfigFileError::HalfTlsPair { .. }), "{error}");
    }

    #[test]
    fn every_config_setting_is_a_flag() {
        // A field whose serde name differs from its flag's long name would be refused in the file.
        let settings: Dict = Figment::from(Serialized::defaults(ServerConfig::default())).extract().unwrap();
        let flags = flag_ids_by_key();
        for key in settings.keys() {
            assert!(flags.contains_key(key), "config key `{key}` has no flag --{key}");
        }
    }

    #[test]
    fn the_annotated_example_is_valid() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/driftdb.example.toml");
        check(Path::new(example)).unwrap();
    }
}
