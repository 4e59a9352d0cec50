//! Where `--schema FILE` or `--schema-from DIR` says documents go: parsing the schema
//! file, deriving one from an old mongodump, and choosing a collection by fields.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::carve::bson;

/// Collections and the fields that identify their documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// `(db.collection, fields)`, in file order.
    pub collections: Vec<(String, Vec<String>)>,
}

impl Schema {
    /// Parses `{"db.collection": ["field", ...], ...}`.
    pub fn from_json(text: &str) -> Result<Schema> {
        let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
        let Some(map) = value.as_object() else {
            bail!("expected an object {{\"db.collection\": [\"field\", ...]}}");
        };
        let mut collections = Vec::new();
        for (ns, fields) in map {
            if !valid_ns(ns) {
                bail!("{ns:?} is not a namespace of the form db.collection");
            }
            let Some(list) = fields.as_array() else {
                bail!("{ns}: expected a list of field names");
            };
            let names = list
                .iter()
                .map(|f| f.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("{ns}: field names must be strings"))?;
            if names.is_empty() {
                bail!("{ns}: list at least one field");
            }
            collections.push((ns.clone(), names));
        }
        Ok(Schema { collections })
    }

    /// Reads a schema file.
    pub fn load(path: &Path) -> Result<Schema> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--schema {}: cannot read it", path.display()))?;
        Schema::from_json(&text).with_context(|| {
            format!(
                "--schema {}: give a JSON object {{\"db.collection\": [\"field\", ...]}}",
                path.display()
            )
        })
    }

    /// Derives a schema from a mongodump directory (`DIR/<db>/<coll>.bson`): each
    /// collection's fields are those present in every one of its dumped documents.
    pub fn from_dump(dir: &Path) -> Result<Schema> {
        let hint = "give the directory of an old mongodump (DIR/<db>/<coll>.bson)";
        let mut collections = Vec::new();
        let mut dbs: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("--schema-from {}: cannot read it; {hint}", dir.display()))?
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        dbs.sort_by_key(|e| e.file_name());
        for db in dbs {
            let mut files: Vec<_> = std::fs::read_dir(db.path())?
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "bson"))
                .collect();
            files.sort_by_key(|e| e.file_name());
            for file in files {
                let bytes = std::fs::read(file.path())?;
                let coll = file
                    .path()
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let ns = format!("{}.{coll}", db.file_name().to_string_lossy());
                if let Some(fields) = common_fields(&bytes) {
                    collections.push((ns, fields));
                }
            }
        }
        if collections.is_empty() {
            bail!(
                "--schema-from {}: no documents found; {hint}",
                dir.display()
            );
        }
        Ok(Schema { collections })
    }

    /// The collection a document with these fields belongs to: the one with the most
    /// listed fields among those whose fields it all has.
    pub fn collection_for(&self, fields: &[String]) -> Option<&str> {
        let mut best: Option<(&str, usize)> = None;
        for (ns, wanted) in &self.collections {
            if wanted.iter().all(|w| fields.contains(w)) {
                match best {
                    Some((other, n)) if n == wanted.len() => {
                        log::info!(
                            "fields {fields:?} match {other} and {ns} equally; {other} wins"
                        );
                    }
                    Some((_, n)) if n > wanted.len() => {}
                    _ => best = Some((ns, wanted.len())),
                }
            }
        }
        best.map(|(ns, _)| ns)
    }
}

/// The fields present in every document of a concatenated BSON file, in the order of
/// the first document; `None` without a valid document.
fn common_fields(bytes: &[u8]) -> Option<Vec<String>> {
    let mut common: Option<Vec<String>> = None;
    let mut at = 0;
    while let Some(len) = bson::declared_len(&bytes[at..]) {
        let Some(doc) = bytes.get(at..at + len) else {
            break;
        };
        let Ok(summary) = bson::validate(doc) else {
            break;
        };
        common = Some(match common {
            None => summary.fields.iter().map(|f| f.to_string()).collect(),
            Some(c) => c
                .into_iter()
                .filter(|f| summary.fields.contains(&f.as_str()))
                .collect(),
        });
        at += len;
    }
    common
}

/// True for `db.collection` with neither part empty.
pub fn valid_ns(ns: &str) -> bool {
    matches!(ns.split_once('.'), Some((db, coll)) if !db.is_empty() && !coll.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_file_errors_explain() {
        assert!(Schema::from_json("[1]").is_err());
        assert!(Schema::from_json(r#"{"nodot": ["a"]}"#).is_err());
        assert!(Schema::from_json(r#"{"a.b": "x"}"#).is_err());
        assert!(Schema::from_json(r#"{"a.b": [1]}"#).is_err());
        let s = Schema::from_json(r#"{"a.b": ["x", "y"], "a.c": ["x"]}"#).unwrap();
        let fields = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(s.collection_for(&fields(&["x", "y", "z"])), Some("a.b"));
        assert_eq!(s.collection_for(&fields(&["x"])), Some("a.c"));
        assert_eq!(s.collection_for(&fields(&["y"])), None);
    }
}
