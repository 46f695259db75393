//! Model bundles and the registry they are promoted into (a local folder or S3).
//!
//! A **bundle** is a manifest (model kind, format version, metrics and feature spec, scaler,
//! alert decisions with thresholds and severity rules, training data window and hash,
//! evaluation figures, source run, git commit, created_at) plus its files (the model
//! definition / weights), each recorded in the manifest with its SHA-256 and size.
//!
//! **Layout** (the same on disk and in S3, under the registry's root prefix):
//!
//! ```text
//! <model>/versions/<n>/<file>...         immutable: written with create-only puts
//! <model>/versions/<n>/manifest.json     written last: a version exists once its manifest does
//! <model>/aliases/<alias>                pointer {version, manifest_sha256, history}, moved by compare-and-swap
//! ```
//!
//! Versions are never overwritten: every put of a version uses `PutMode::Create`, and a
//! promotion that loses the race for number `n` takes `n + 1`. An alias moves only if it still
//! is what the promoter read (S3: `If-Match` on its ETag; local: content hash under a file
//! lock), so of two concurrent promotions exactly one moves it and the other gets
//! [`RegistryError::AliasConflict`]. Loading verifies the format version, the manifest's hash
//! against the alias pointer, and every file's hash and size; a mismatch is refused.
//!
//! S3 settings come from the standard variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` for S3-compatible stores; http endpoints are allowed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decisions::DecisionConfig;
use crate::features::FeatureSpec;
use crate::models::detectors::DetectorConfig;

/// The bundle format this build writes and reads.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;
/// File of a bundle holding a streaming detector's definition ([`DetectorConfig`] as JSON).
pub const DETECTOR_FILE: &str = "detector.json";
/// The statistical forecaster's settings in a forecaster bundle ([`Bundle::for_forecaster`]).
pub const FORECASTER_FILE: &str = "forecaster.json";
const MANIFEST_FILE: &str = "manifest.json";

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What a bundle was trained / calibrated on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingData {
    /// Dataset name (`sim`, `nab`, `smd`, a file, a source query).
    pub dataset: String,
    /// SHA-256 over the dataset's files (name and content).
    pub sha256: String,
    /// Rows seen.
    pub rows: u64,
    /// First timestamp (ms), when the data has timestamps.
    pub start_ms: Option<i64>,
    /// Last timestamp (ms).
    pub end_ms: Option<i64>,
}

/// Hash and size of one bundle file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A bundle's manifest (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`BUNDLE_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Registered model name (e.g. `anomaly-detector`).
    pub model: String,
    /// Model kind (`tail_ensemble`, `mahalanobis`, …).
    pub kind: String,
    /// Version number in the registry (0 until published).
    pub version: u64,
    /// Input metric columns, in order.
    pub metrics: Vec<String>,
    /// Feature spec, when the model scores engineered features rather than raw metrics.
    pub feature_spec: Option<FeatureSpec>,
    /// Input scaling parameters, when the model has any.
    pub scaler: Option<serde_json::Value>,
    /// Alert decisions: threshold, consecutive rows, cooldown, severity bands and level rules.
    pub decisions: DecisionConfig,
    /// Training data window and hash.
    pub training: TrainingData,
    /// Evaluation figures of the source run.
    pub evaluation: BTreeMap<String, f64>,
    /// Hyperparameters of the source run.
    pub params: BTreeMap<String, String>,
    /// Tracking id of the source run.
    pub source_run: String,
    /// Git commit of the code that produced it.
    pub git_commit: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Every file of the bundle with its digest.
    pub files: BTreeMap<String, FileDigest>,
}

impl Manifest {
    /// A manifest to publish: format and version are filled in by [`Registry::publish`],
    /// files by [`Bundle::new`]; evaluation, params and git commit start empty.
    pub fn new(model: &str, metrics: Vec<String>, decisions: DecisionConfig, training: TrainingData, source_run: &str) -> Self {
        Self {
            format_version: 0,
            model: model.to_string(),
            kind: String::new(),
            version: 0,
            metrics,
            feature_spec: None,
            scaler: None,
            decisions,
            training,
            evaluation: BTreeMap::new(),
            params: BTreeMap::new(),
            source_run: source_run.to_string(),
            git_commit: None,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            files: BTreeMap::new(),
        }
    }
}

/// A manifest plus its files.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// File name → content.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Registry and bundle failures. None of them carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A registry URI that cannot be opened.
    #[error("registry `{uri}`: {reason}")]
    BadUri {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error("registry `{uri}`: {op} `{path}`: {source}")]
    Store {
        /// Registry URI.
        uri: String,
        /// Operation.
        op: &'static str,
        /// Object path.
        path: String,
        /// Cause.
        source: Box<object_store::Error>,
    },
    /// Something asked for is not there.
    #[error("registry `{uri}`: {what} not found")]
    NotFound {
        /// Registry URI.
        uri: String,
        /// What.
        what: String,
    },
    /// A bundle whose content does not match its manifest or pointer.
    #[error("refusing bundle {what}: {reason}")]
    Corrupt {
        /// Which bundle / file.
        what: String,
        /// Why.
        reason: String,
    },
    /// A bundle written in a format this build does not read.
    #[error("refusing bundle {what}: format version {found}, this build reads version {supported}")]
    FormatVersion {
        /// Which bundle.
        what: String,
        /// Its version.
        found: u64,
        /// Ours.
        supported: u32,
    },
    /// The alias moved between reading and updating it (another promotion won).
    #[error("alias `{alias}` of `{model}` was moved concurrently (now version {now}); nothing changed, retry to promote over it")]
    AliasConflict {
        /// Model.
        model: String,
        /// Alias.
        alias: String,
        /// Its version now, as far as known.
        now: String,
    },
    /// Invalid input (names, bundle content).
    #[error("{0}")]
    Invalid(String),
}

impl Bundle {
    /// A bundle from a manifest (its `files` and `format_version` are filled in here) and files.
    pub fn new(mut manifest: Manifest, files: BTreeMap<String, Vec<u8>>) -> Self {
        manifest.format_version = BUNDLE_FORMAT_VERSION;
        manifest.files =
            files.iter().map(|(name, bytes)| (name.clone(), FileDigest { sha256: sha256_hex(bytes), bytes: bytes.len() as u64 })).collect();
        Self { manifest, files }
    }

    /// A bundle serving a streaming detector: its definition is the file `detector.json`.
    pub fn for_detector(manifest: Manifest, detector: &DetectorConfig) -> Self {
        let json = serde_json::to_vec_pretty(detector).expect("detector configs serialize");
        let mut manifest = manifest;
        manifest.kind = detector.name().to_string();
        Self::new(manifest, BTreeMap::from([(DETECTOR_FILE.to_string(), json)]))
    }

    /// A forecaster bundle: the statistical `auto` forecaster's settings (kind `auto`; it fits
    /// per server on the history the runtime reads, so the bundle holds no weights).
    pub fn for_forecaster(manifest: Manifest, forecaster: &crate::predict::StatisticalForecast) -> Self {
        let json = serde_json::to_vec_pretty(forecaster).expect("forecaster settings serialize");
        let mut manifest = manifest;
        manifest.kind = "auto".to_string();
        Self::new(manifest, BTreeMap::from([(FORECASTER_FILE.to_string(), json)]))
    }

    /// An LSTM forecaster bundle (kind `lstm`): a bundle folder's `forecaster.json` and
    /// `weights.bpk` (`experiment lstm train`), checked as the runtime loads them.
    pub fn for_lstm(manifest: Manifest, dir: &std::path::Path) -> Result<Self, crate::forecast::ForecastError> {
        use crate::forecast::{META_FILE, WEIGHTS_FILE};
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| crate::forecast::ForecastError::Io(format!("{}: {e}", dir.join(name).display())))
        };
        let (meta, weights) = (read(META_FILE)?, read(WEIGHTS_FILE)?);
        crate::forecast::Forecaster::from_bytes(&meta, weights.clone(), &dir.display().to_string())?;
        let mut manifest = manifest;
        manifest.kind = "lstm".to_string();
        Ok(Self::new(manifest, BTreeMap::from([(META_FILE.to_string(), meta), (WEIGHTS_FILE.to_string(), weights)])))
    }

    /// The forecaster this bundle serves: `auto` (its settings checked) or an LSTM (weights
    /// verified), by kind.
    pub fn predictor(&self) -> Result<crate::predict::Predictor, RegistryError> {
        if self.manifest.kind != "lstm" {
            return self.forecaster().map(|f| crate::predict::Predictor::Auto(Box::new(f)));
        }
        let what = format!("{} v{}", self.manifest.model, self.manifest.version);
        let corrupt = |reason: String| RegistryError::Corrupt { what: what.clone(), reason };
        let file = |name: &str| self.files.get(name).ok_or_else(|| corrupt(format!("no `{name}` (kind lstm)")));
        let (meta, weights) = (file(crate::forecast::META_FILE)?, file(crate::forecast::WEIGHTS_FILE)?);
        crate::forecast::Forecaster::from_bytes(meta, weights.clone(), &what)
            .map(|f| crate::predict::Predictor::Lstm(Box::new(f)))
            .map_err(|e| corrupt(e.to_string()))
    }

    /// The forecaster this bundle serves (settings checked).
    pub fn forecaster(&self) -> Result<crate::predict::StatisticalForecast, RegistryError> {
        let what = format!("{} v{}", self.manifest.model, self.manifest.version);
        let corrupt = |reason: String| RegistryError::Corrupt { what: what.clone(), reason };
        let bytes = self
            .files
            .get(FORECASTER_FILE)
            .ok_or_else(|| corrupt(format!("no `{FORECASTER_FILE}` (kind {}): not a forecaster bundle", self.manifest.kind)))?;
        let parse = |e: serde_json::Error| corrupt(format!("`{FORECASTER_FILE}`: {e}"));
        let mut f: crate::predict::StatisticalForecast = serde_json::from_slice(bytes).map_err(parse)?;
        f.keep_stored(&serde_json::from_slice(bytes).map_err(parse)?);
        f.validate().map_err(|e| corrupt(e.to_string()))?;
        Ok(f)
    }

    /// Check every file against the manifest (hash and size, nothing missing or extra) and the
    /// settings it carries.
    pub fn verify(&self) -> Result<(), RegistryError> {
        let what = format!("{} v{}", self.manifest.model, self.manifest.version);
        let corrupt = |reason: String| RegistryError::Corrupt { what: what.clone(), reason };
        if self.manifest.format_version != BUNDLE_FORMAT_VERSION {
            return Err(RegistryError::FormatVersion {
                what,
                found: u64::from(self.manifest.format_version),
                supported: BUNDLE_FORMAT_VERSION,
            });
        }
        for (name, digest) in &self.manifest.files {
            let bytes = self.files.get(name).ok_or_else(|| corrupt(format!("file `{name}` is missing")))?;
            if bytes.len() as u64 != digest.bytes || sha256_hex(bytes) != digest.sha256 {
                return Err(corrupt(format!(
                    "file `{name}` does not match its checksum (sha256 {}, {} bytes; manifest says {}, {} bytes)",
                    sha256_hex(bytes),
                    bytes.len(),
                    digest.sha256,
                    digest.bytes
                )));
            }
        }
        if let Some(extra) = self.files.keys().find(|k| !self.manifest.files.contains_key(*k)) {
            return Err(corrupt(format!("file `{extra}` is not in the manifest")));
        }
        self.manifest.decisions.validate().map_err(|e| corrupt(e.to_string()))?;
        Ok(())
    }

    /// The streaming detector this bundle serves.
    pub fn detector(&self) -> Result<DetectorConfig, RegistryError> {
        let what = format!("{} v{}", self.manifest.model, self.manifest.version);
        let bytes = self.files.get(DETECTOR_FILE).ok_or_else(|| RegistryError::Corrupt {
            what: what.clone(),
            reason: format!("no `{DETECTOR_FILE}` (kind {})", self.manifest.kind),
        })?;
        let det: DetectorConfig = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Corrupt { what: what.clone(), reason: format!("`{DETECTOR_FILE}`: {e}") })?;
        det.build(self.manifest.metrics.len().max(1)).map_err(|e| RegistryError::Corrupt { what, reason: e.to_string() })?;
        Ok(det)
    }
}

/// Where an alias points (`<model>/aliases/<alias>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasPointer {
    /// Model.
    pub model: String,
    /// Alias.
    pub alias: String,
    /// Version it points to.
    pub version: u64,
    /// SHA-256 of that version's `manifest.json`.
    pub manifest_sha256: String,
    /// Versions it pointed to before, oldest first (for rollback).
    pub history: Vec<u64>,
    /// RFC 3339 time of the move.
    pub updated_at: String,
}

/// An alias as read, with the token a compare-and-swap must present.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasState {
    /// The pointer.
    pub pointer: AliasPointer,
    /// ETag (S3) or content hash (local).
    pub token: String,
}

/// One version in a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Its manifest.
    pub manifest: Manifest,
    /// Aliases pointing at it.
    pub aliases: Vec<String>,
}

/// A model registry: a local folder or an S3 prefix.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<dyn ObjectStore>,
    root: StorePath,
    /// Folder of a local registry (alias updates take a file lock there).
    local: Option<PathBuf>,
    uri: String,
}

fn check_name(kind: &str, name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok { Ok(()) } else { Err(RegistryError::Invalid(format!("{kind} `{name}`: use letters, digits, '-', '_', '.'"))) }
}

impl Registry {
    /// Open `file://DIR`, a plain folder path, or `s3://BUCKET[/PREFIX]`. A local folder is
    /// created if missing.
    pub fn open(uri: &str) -> Result<Self, RegistryError> {
        Self::open_with(uri, &[])
    }

    /// [`Registry::open`] with S3 settings that override the environment, as object_store
    /// config keys (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`, `aws_region`,
    /// `aws_allow_http`, …).
    pub fn open_with(uri: &str, s3_options: &[(&str, &str)]) -> Result<Self, RegistryError> {
        let bad = |reason: String| RegistryError::BadUri { uri: uri.to_string(), reason };
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket".into()));
            }
            // No idle connection pool: a registry makes a handful of requests, and callers may
            // drive it from short-lived tokio runtimes, whose pooled connections would die with them.
            let client = object_store::ClientOptions::new().with_pool_max_idle_per_host(0);
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).with_client_options(client);
            let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL")).unwrap_or_default();
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_ok() {
                builder = builder.with_region(std::env::var("AWS_DEFAULT_REGION").unwrap_or_default());
            }
            for (key, value) in s3_options {
                let key: object_store::aws::AmazonS3ConfigKey = key.parse().map_err(|e: object_store::Error| bad(e.to_string()))?;
                builder = builder.with_config(key, *value);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            Ok(Self { store: Arc::new(store), root: StorePath::from(prefix.trim_matches('/')), local: None, uri: uri.to_string() })
        } else {
            let dir = PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
            if uri.contains("://") && !uri.starts_with("file://") {
                return Err(bad("use file://DIR, a folder path, or s3://BUCKET/PREFIX".into()));
            }
            std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
            let dir = dir.canonicalize().map_err(|e| bad(e.to_string()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
            Ok(Self { store: Arc::new(store), root: StorePath::default(), local: Some(dir), uri: uri.to_string() })
        }
    }

    /// The URI it was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The store and the path of `parts` under the registry's root, for other objects kept
    /// beside the models (the remote outbox).
    pub fn store_at(&self, parts: &[&str]) -> (Arc<dyn ObjectStore>, StorePath) {
        (Arc::clone(&self.store), self.path(parts))
    }

    fn path(&self, parts: &[&str]) -> StorePath {
        let mut p = self.root.clone();
        for part in parts {
            for seg in part.split('/').filter(|s| !s.is_empty()) {
                p = p.clone().join(seg);
            }
        }
        p
    }

    fn store_err(&self, op: &'static str, path: &StorePath) -> impl FnOnce(object_store::Error) -> RegistryError + '_ {
        let path = path.to_string();
        move |source| RegistryError::Store { uri: self.uri.clone(), op, path, source: Box::new(source) }
    }

    async fn get_bytes(&self, path: &StorePath, what: &str) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        match self.store.get(path).await {
            Ok(r) => {
                let etag = r.meta.e_tag.clone();
                let bytes = r.bytes().await.map_err(self.store_err("read", path))?;
                Ok((bytes.to_vec(), etag))
            }
            Err(object_store::Error::NotFound { .. }) => Err(RegistryError::NotFound { uri: self.uri.clone(), what: what.to_string() }),
            Err(e) => Err(self.store_err("get", path)(e)),
        }
    }

    async fn children(&self, prefix: &StorePath) -> Result<Vec<String>, RegistryError> {
        let list = self.store.list_with_delimiter(Some(prefix)).await.map_err(self.store_err("list", prefix))?;
        Ok(list.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    /// Registered model names.
    pub async fn models(&self) -> Result<Vec<String>, RegistryError> {
        let mut names = self.children(&self.root).await?;
        names.sort();
        Ok(names)
    }

    /// Published versions of a model, ascending (versions without a manifest are skipped).
    pub async fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        check_name("model", model)?;
        let mut out: Vec<u64> = Vec::new();
        for name in self.children(&self.path(&[model, "versions"])).await? {
            if let Ok(v) = name.parse::<u64>() {
                let manifest = self.path(&[model, "versions", &name, MANIFEST_FILE]);
                match self.store.head(&manifest).await {
                    Ok(_) => out.push(v),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.store_err("head", &manifest)(e)),
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Write a bundle as the next version of its model, never overwriting anything. Returns the
    /// version number and the published manifest's SHA-256.
    pub async fn publish(&self, bundle: &Bundle) -> Result<(u64, String), RegistryError> {
        let model = bundle.manifest.model.clone();
        check_name("model", &model)?;
        bundle.verify()?;
        'attempt: for _ in 0..64 {
            let taken = self.children(&self.path(&[&model, "versions"])).await?;
            let version = taken.iter().filter_map(|n| n.parse::<u64>().ok()).max().unwrap_or(0) + 1;
            let mut manifest = bundle.manifest.clone();
            manifest.version = version;
            let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
            let files = bundle.files.iter().map(|(n, b)| (n.as_str(), b.clone())).chain([(MANIFEST_FILE, manifest_bytes.clone())]);
            for (name, bytes) in files {
                check_name("file", name)?;
                let path = self.path(&[&model, "versions", &version.to_string(), name]);
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                match self.store.put_opts(&path, PutPayload::from(bytes), opts).await {
                    Ok(_) => {}
                    // Another promotion took this number: take the next one.
                    Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => continue 'attempt,
                    Err(e) => return Err(self.store_err("put", &path)(e)),
                }
            }
            return Ok((version, sha256_hex(&manifest_bytes)));
        }
        Err(RegistryError::Invalid(format!("could not claim a version number for `{model}` after 64 attempts")))
    }

    /// Load and verify one version.
    pub async fn load_version(&self, model: &str, version: u64) -> Result<Bundle, RegistryError> {
        Ok(self.load_version_with_hash(model, version).await?.0)
    }

    async fn load_version_with_hash(&self, model: &str, version: u64) -> Result<(Bundle, String), RegistryError> {
        check_name("model", model)?;
        let what = format!("{model} v{version}");
        let mpath = self.path(&[model, "versions", &version.to_string(), MANIFEST_FILE]);
        let (mbytes, _) = self.get_bytes(&mpath, &format!("{what} (manifest {mpath})")).await?;
        let corrupt = |reason: String| RegistryError::Corrupt { what: what.clone(), reason };
        let raw: serde_json::Value = serde_json::from_slice(&mbytes).map_err(|e| corrupt(format!("manifest.json: {e}")))?;
        let found = raw
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt("manifest.json: no format_version".into()))?;
        if found != u64::from(BUNDLE_FORMAT_VERSION) {
            return Err(RegistryError::FormatVersion { what, found, supported: BUNDLE_FORMAT_VERSION });
        }
        let manifest: Manifest = serde_json::from_value(raw).map_err(|e| corrupt(format!("manifest.json: {e}")))?;
        if manifest.model != model || manifest.version != version {
            return Err(corrupt(format!("manifest says {} v{}", manifest.model, manifest.version)));
        }
        let mut files = BTreeMap::new();
        for name in manifest.files.keys() {
            check_name("file", name)?;
            let path = self.path(&[model, "versions", &version.to_string(), name]);
            let (bytes, _) = self.get_bytes(&path, &format!("{what} file `{name}`")).await.map_err(|e| match e {
                RegistryError::NotFound { .. } => corrupt(format!("file `{name}` is missing")),
                other => other,
            })?;
            files.insert(name.clone(), bytes);
        }
        let bundle = Bundle { manifest, files };
        bundle.verify()?;
        Ok((bundle, sha256_hex(&mbytes)))
    }

    /// Read an alias (None when it does not exist).
    pub async fn read_alias(&self, model: &str, alias: &str) -> Result<Option<AliasState>, RegistryError> {
        check_name("model", model)?;
        check_name("alias", alias)?;
        let path = self.path(&[model, "aliases", alias]);
        match self.get_bytes(&path, "alias").await {
            Ok((bytes, etag)) => {
                let pointer: AliasPointer = serde_json::from_slice(&bytes)
                    .map_err(|e| RegistryError::Corrupt { what: format!("alias {model}@{alias}"), reason: e.to_string() })?;
                let token = if self.local.is_some() { sha256_hex(&bytes) } else { etag.unwrap_or_default() };
                Ok(Some(AliasState { pointer, token }))
            }
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Load and verify the version an alias points to (its manifest must hash to what the
    /// pointer recorded).
    pub async fn load_alias(&self, model: &str, alias: &str) -> Result<Bundle, RegistryError> {
        let state = self
            .read_alias(model, alias)
            .await?
            .ok_or_else(|| RegistryError::NotFound { uri: self.uri.clone(), what: format!("alias `{alias}` of model `{model}`") })?;
        let (bundle, hash) = self.load_version_with_hash(model, state.pointer.version).await?;
        if hash != state.pointer.manifest_sha256 {
            return Err(RegistryError::Corrupt {
                what: format!("{model} v{}", state.pointer.version),
                reason: format!("manifest sha256 {hash} differs from the one alias `{alias}` recorded ({})", state.pointer.manifest_sha256),
            });
        }
        Ok(bundle)
    }

    /// Point `alias` at `version`, if the alias is still `expected` (None: it must not exist).
    /// Exactly one of two concurrent calls with the same `expected` succeeds.
    pub async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
        expected: Option<&AliasState>,
    ) -> Result<AliasPointer, RegistryError> {
        check_name("alias", alias)?;
        let (_, manifest_sha256) = self.load_version_with_hash(model, version).await?;
        let mut history = expected.map(|s| s.pointer.history.clone()).unwrap_or_default();
        if let Some(prev) = expected {
            history.push(prev.pointer.version);
        }
        let pointer = AliasPointer {
            model: model.into(),
            alias: alias.into(),
            version,
            manifest_sha256,
            history,
            updated_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        };
        self.swap_alias(&pointer, expected).await?;
        Ok(pointer)
    }

    async fn swap_alias(&self, pointer: &AliasPointer, expected: Option<&AliasState>) -> Result<(), RegistryError> {
        let (model, alias) = (pointer.model.as_str(), pointer.alias.as_str());
        let bytes = serde_json::to_vec_pretty(pointer).expect("pointers serialize");
        let conflict = |now: String| RegistryError::AliasConflict { model: model.into(), alias: alias.into(), now };
        let path = self.path(&[model, "aliases", alias]);
        if let Some(dir) = &self.local {
            // Local: compare-and-swap under an exclusive lock; write-then-rename keeps readers
            // from ever seeing half a pointer.
            let file = dir.join(path.as_ref());
            let parent = file.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.clone());
            let io = |e: std::io::Error| RegistryError::BadUri { uri: self.uri.clone(), reason: format!("{}: {e}", file.display()) };
            std::fs::create_dir_all(&parent).map_err(io)?;
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(parent.join(format!(".{alias}.lock")))
                .map_err(io)?;
            lock.lock().map_err(io)?;
            let current = match std::fs::read(&file) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io(e)),
            };
            let now_version = || {
                current
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<AliasPointer>(b).ok())
                    .map_or_else(|| "none".to_string(), |p| p.version.to_string())
            };
            match (&current, expected) {
                (None, None) => {}
                (Some(b), Some(exp)) if sha256_hex(b) == exp.token => {}
                _ => return Err(conflict(now_version())),
            }
            let tmp = parent.join(format!(".{alias}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, &bytes).map_err(io)?;
            std::fs::rename(&tmp, &file).map_err(io)?;
            return Ok(());
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(exp) => PutMode::Update(UpdateVersion { e_tag: Some(exp.token.clone()), version: None }),
        };
        match self.store.put_opts(&path, PutPayload::from(bytes), PutOptions { mode, ..Default::default() }).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                let now = self
                    .read_alias(model, alias)
                    .await
                    .ok()
                    .flatten()
                    .map_or_else(|| "none".to_string(), |s| s.pointer.version.to_string());
                Err(conflict(now))
            }
            Err(e) => Err(self.store_err("put", &path)(e)),
        }
    }

    /// Move `alias` back: to `to`, or to the version it pointed to before the last move.
    pub async fn rollback(&self, model: &str, alias: &str, to: Option<u64>) -> Result<AliasPointer, RegistryError> {
        let state = self
            .read_alias(model, alias)
            .await?
            .ok_or_else(|| RegistryError::NotFound { uri: self.uri.clone(), what: format!("alias `{alias}` of model `{model}`") })?;
        let mut history = state.pointer.history.clone();
        let target = match to {
            Some(v) => v,
            None => history
                .pop()
                .ok_or_else(|| RegistryError::Invalid(format!("alias `{alias}` of `{model}` has no earlier version to roll back to")))?,
        };
        let (_, manifest_sha256) = self.load_version_with_hash(model, target).await?;
        if to.is_some() {
            history.push(state.pointer.version);
        }
        let pointer = AliasPointer {
            model: model.into(),
            alias: alias.into(),
            version: target,
            manifest_sha256,
            history,
            updated_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        };
        self.swap_alias(&pointer, Some(&state)).await?;
        Ok(pointer)
    }

    /// Aliases of a model.
    pub async fn aliases(&self, model: &str) -> Result<Vec<AliasPointer>, RegistryError> {
        check_name("model", model)?;
        let prefix = self.path(&[model, "aliases"]);
        let list = self.store.list_with_delimiter(Some(&prefix)).await.map_err(self.store_err("list", &prefix))?;
        let mut out = Vec::new();
        for obj in list.objects {
            if let Some(name) = obj.location.filename().filter(|n| !n.starts_with('.'))
                && let Some(state) = self.read_alias(model, name).await?
            {
                out.push(state.pointer);
            }
        }
        out.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(out)
    }

    /// Every version of a model with its manifest and aliases.
    pub async fn list(&self, model: &str) -> Result<Vec<VersionInfo>, RegistryError> {
        let aliases = self.aliases(model).await?;
        let mut out = Vec::new();
        for version in self.versions(model).await? {
            let path = self.path(&[model, "versions", &version.to_string(), MANIFEST_FILE]);
            let (bytes, _) = self.get_bytes(&path, "manifest").await?;
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::Corrupt { what: format!("{model} v{version}"), reason: format!("manifest.json: {e}") })?;
            let names = aliases.iter().filter(|a| a.version == version).map(|a| a.alias.clone()).collect();
            out.push(VersionInfo { version, manifest, aliases: names });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(model: &str) -> Manifest {
        let training = TrainingData { dataset: "sim".into(), sha256: "00".into(), rows: 10, start_ms: Some(0), end_ms: Some(9) };
        Manifest {
            evaluation: BTreeMap::from([("event_f1".into(), 0.5)]),
            ..Manifest::new(model, vec!["cpu_usage".into()], DecisionConfig::default(), training, "run")
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio")
    }

    #[test]
    fn a_forecaster_bundle_keeps_the_settings_it_was_written_with() {
        let current = crate::predict::StatisticalForecast::default();
        let bundle = Bundle::for_forecaster(manifest("forecaster"), &current);
        assert_eq!(bundle.forecaster().expect("loads"), current, "a bundle written now reads back as written");
        // Written before `median_level_share` existed: the level over twice the window (0).
        let mut old: serde_json::Value = serde_json::to_value(&current).expect("serialize");
        old["params"].as_object_mut().expect("params").remove("median_level_share");
        let mut bundle = bundle;
        bundle.files.insert(FORECASTER_FILE.to_string(), serde_json::to_vec(&old).expect("json"));
        let read = bundle.forecaster().expect("loads");
        assert_eq!(read.params.median_level_share, 0.0);
        assert_ne!(current.params.median_level_share, 0.0, "the default moved on");
        assert_eq!(read.params.combine, current.params.combine);
    }

    #[test]
    fn local_registry_publishes_immutably_moves_aliases_and_rolls_back() {
        let dir = std::env::temp_dir().join(format!("registry-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let reg = Registry::open(&format!("file://{}", dir.display())).expect("open");
        let bundle = Bundle::for_detector(manifest("anomaly-detector"), &DetectorConfig::default());
        rt().block_on(async {
            let (v1, _) = reg.publish(&bundle).await.expect("publish");
            let (v2, _) = reg.publish(&bundle).await.expect("publish");
            assert_eq!((v1, v2), (1, 2));
            assert_eq!(reg.versions("anomaly-detector").await.expect("versions"), vec![1, 2]);
            reg.set_alias("anomaly-detector", "champion", 1, None).await.expect("create alias");
            let before = reg.read_alias("anomaly-detector", "champion").await.expect("read").expect("exists");
            // A stale expectation (None while it exists) loses.
            let err = reg.set_alias("anomaly-detector", "champion", 2, None).await.expect_err("must conflict");
            assert!(matches!(err, RegistryError::AliasConflict { .. }), "{err}");
            reg.set_alias("anomaly-detector", "champion", 2, Some(&before)).await.expect("move");
            let err = reg.set_alias("anomaly-detector", "champion", 1, Some(&before)).await.expect_err("stale token");
            assert!(err.to_string().contains("moved concurrently"), "{err}");
            let loaded = reg.load_alias("anomaly-detector", "champion").await.expect("load");
            assert_eq!(loaded.manifest.version, 2);
            assert_eq!(loaded.detector().expect("detector"), DetectorConfig::default());
            let back = reg.rollback("anomaly-detector", "champion", None).await.expect("rollback");
            assert_eq!((back.version, back.history.clone()), (1, vec![]));
            // Tampering with a published file is refused on load.
            let file = dir.join("anomaly-detector/versions/1/detector.json");
            let mut text = std::fs::read_to_string(&file).expect("read");
            text = text.replacen('{', "{ ", 1);
            std::fs::write(&file, text).expect("write");
            let err = reg.load_alias("anomaly-detector", "champion").await.expect_err("corrupt");
            assert!(err.to_string().contains("does not match its checksum"), "{err}");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_format_versions_are_refused() {
        let mut bundle = Bundle::for_detector(manifest("m"), &DetectorConfig::default());
        bundle.manifest.format_version = 99;
        let err = bundle.verify().expect_err("refused");
        assert!(err.to_string().contains("format version 99"), "{err}");
    }
}
