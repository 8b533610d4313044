//! The startup check that the CustomResourceDefinitions in the cluster are the ones this
//! controller writes.
//!
//! Helm installs a chart's CRDs once and never upgrades them. A controller newer than the CRDs
//! in the cluster writes fields their schema does not declare: the API server refuses such a
//! status write (`field not declared in schema`) or prunes such a field, so migrations stall
//! mid-way with errors in the log. `run` therefore compares, before it takes part in leader
//! election, every field of its own schemas with the installed ones, and refuses to start with
//! the missing fields named and the command that fixes it. In a rolling upgrade the new pod
//! then stays in CrashLoopBackOff with that message while the old one keeps working. Installed
//! CRDs newer than the controller (more fields) are fine.

use std::collections::BTreeMap;

use couchestor_common::StoragePolicy;
use couchestor_common::migration::VolumeMigration;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
    JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::{Api, Client, CustomResourceExt};

/// The fix named in every mismatch.
const FIX: &str = "apply this controller's CRDs: kubectl apply --server-side -f \
    charts/couchestor/crds/crds.yaml (Helm installs a chart's CRDs but never upgrades them)";

/// How many missing fields a message lists before it counts the rest.
const LISTED: usize = 8;

/// Why the installed CRDs do not fit this controller.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The CRD is not in the cluster.
    #[error("CRD {name} is not installed; {FIX}")]
    NotInstalled {
        /// The CRD's name.
        name: String,
    },
    /// The CRD does not serve a version the controller uses.
    #[error("CRD {name} does not serve version {version}, which this controller uses; {FIX}")]
    VersionNotServed {
        /// The CRD's name.
        name: String,
        /// The version, e.g. `v1`.
        version: String,
    },
    /// The installed schema lacks fields the controller writes or reads.
    #[error("CRD {name} is older than this controller: version {version} lacks {}; {FIX}", list(.missing))]
    Outdated {
        /// The CRD's name.
        name: String,
        /// The version, e.g. `v1`.
        version: String,
        /// Paths of the missing fields, e.g. `status.copies`.
        missing: Vec<String>,
    },
    /// The API server did not answer the read.
    #[error("reading CRD {name}: {source}")]
    Read {
        /// The CRD's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

impl CrdError {
    /// Whether the check could not be made because the controller may not read CRDs (its
    /// RBAC lacks `get` on `customresourcedefinitions`), rather than because they differ.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, CrdError::Read { source: kube::Error::Api(e), .. } if e.code == 403)
    }
}

fn list(missing: &[String]) -> String {
    let mut out = missing[..missing.len().min(LISTED)].join(", ");
    if missing.len() > LISTED {
        out.push_str(&format!(" and {} more", missing.len() - LISTED));
    }
    out
}

/// Checks every CRD this controller uses against the cluster's.
pub async fn check(client: &Client) -> Result<(), CrdError> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for wanted in [StoragePolicy::crd(), VolumeMigration::crd()] {
        check_one(&api, &wanted).await?;
    }
    Ok(())
}

/// Checks that the cluster's CRD of `wanted`'s name serves each of its versions with at least
/// its fields.
pub async fn check_one(
    api: &Api<CustomResourceDefinition>,
    wanted: &CustomResourceDefinition,
) -> Result<(), CrdError> {
    let name = wanted.metadata.name.clone().unwrap_or_default();
    let installed = api
        .get_opt(&name)
        .await
        .map_err(|source| CrdError::Read {
            name: name.clone(),
            source,
        })?
        .ok_or_else(|| CrdError::NotInstalled { name: name.clone() })?;
    compare(&name, &installed, wanted)
}

/// The pure comparison behind [`check_one`].
pub fn compare(
    name: &str,
    installed: &CustomResourceDefinition,
    wanted: &CustomResourceDefinition,
) -> Result<(), CrdError> {
    for version in &wanted.spec.versions {
        let served = installed
            .spec
            .versions
            .iter()
            .find(|v| v.name == version.name && v.served);
        let Some(served) = served else {
            return Err(CrdError::VersionNotServed {
                name: name.into(),
                version: version.name.clone(),
            });
        };
        fn schema(v: &CustomResourceDefinitionVersion) -> Option<&JSONSchemaProps> {
            v.schema.as_ref()?.open_api_v3_schema.as_ref()
        }
        let (Some(have), Some(want)) = (schema(served), schema(version)) else {
            continue;
        };
        let mut missing = Vec::new();
        missing_fields(have, want, "", &mut missing);
        if !missing.is_empty() {
            return Err(CrdError::Outdated {
                name: name.into(),
                version: version.name.clone(),
                missing,
            });
        }
    }
    Ok(())
}

/// Appends to `out` the path of every field `want` declares that `have` does not (below
/// `path`). Under `x-kubernetes-preserve-unknown-fields` every field is kept, so nothing is
/// missing there.
pub fn missing_fields(
    have: &JSONSchemaProps,
    want: &JSONSchemaProps,
    path: &str,
    out: &mut Vec<String>,
) {
    if have.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    let none = BTreeMap::new();
    let have_props = have.properties.as_ref().unwrap_or(&none);
    for (field, w) in want.properties.iter().flatten() {
        let here = if path.is_empty() {
            field.clone()
        } else {
            format!("{path}.{field}")
        };
        match have_props.get(field) {
            Some(h) => missing_fields(h, w, &here, out),
            None => out.push(here),
        }
    }
    if let (Some(JSONSchemaPropsOrArray::Schema(h)), Some(JSONSchemaPropsOrArray::Schema(w))) =
        (&have.items, &want.items)
    {
        missing_fields(h, w, &format!("{path}[]"), out);
    }
    if let (Some(JSONSchemaPropsOrBool::Schema(h)), Some(JSONSchemaPropsOrBool::Schema(w))) =
        (&have.additional_properties, &want.additional_properties)
    {
        missing_fields(h, w, &format!("{path}[*]"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn without(mut crd: CustomResourceDefinition, path: &[&str]) -> CustomResourceDefinition {
        let schema = crd.spec.versions[0]
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("a schema");
        let (last, parents) = path.split_last().expect("a path");
        let mut at = schema;
        for p in parents {
            at = at.properties.as_mut().and_then(|m| m.get_mut(*p)).expect(p);
        }
        assert!(
            at.properties
                .as_mut()
                .expect("properties")
                .remove(*last)
                .is_some(),
            "{path:?}"
        );
        crd
    }

    #[test]
    fn the_controllers_own_crds_match_themselves() {
        for crd in [StoragePolicy::crd(), VolumeMigration::crd()] {
            let name = crd.metadata.name.clone().unwrap();
            compare(&name, &crd, &crd).unwrap();
        }
    }

    #[test]
    fn an_older_crd_names_every_missing_field_and_the_fix() {
        let wanted = VolumeMigration::crd();
        let old = without(
            without(wanted.clone(), &["status", "copies"]),
            &["status", "cordons"],
        );
        let err = compare("volumemigrations.storage.billyronks.io", &old, &wanted).unwrap_err();
        let CrdError::Outdated {
            missing, version, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(version, "v1");
        assert_eq!(missing, &["status.copies", "status.cordons"]);
        let m = err.to_string();
        assert!(
            m.contains("version v1 lacks status.copies, status.cordons;"),
            "{m}"
        );
        assert!(
            m.contains("kubectl apply --server-side -f charts/couchestor/crds/crds.yaml"),
            "{m}"
        );
        // A newer CRD (the controller's lacks a field the cluster has) is fine.
        compare("volumemigrations.storage.billyronks.io", &wanted, &old).unwrap();
    }

    #[test]
    fn a_version_not_served_is_named() {
        let wanted = StoragePolicy::crd();
        let mut old = wanted.clone();
        old.spec.versions[0].served = false;
        let err = compare("sp", &old, &wanted).unwrap_err();
        assert!(
            matches!(&err, CrdError::VersionNotServed { version, .. } if version == "v1"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("CRD sp does not serve version v1"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_object_is_one_field_and_long_lists_are_counted() {
        let wanted = StoragePolicy::crd();
        let old = without(wanted.clone(), &["status"]);
        let CrdError::Outdated { missing, .. } = compare("sp", &old, &wanted).unwrap_err() else {
            panic!("want Outdated");
        };
        assert_eq!(missing, ["status"], "not each of its fields");
        let many: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        assert_eq!(list(&many), "f0, f1, f2, f3, f4, f5, f6, f7 and 3 more");
    }

    #[test]
    fn items_and_maps_are_compared_and_preserved_unknown_fields_hold_anything() {
        let obj = |fields: &[&str]| JSONSchemaProps {
            properties: Some(
                fields
                    .iter()
                    .map(|f| (f.to_string(), JSONSchemaProps::default()))
                    .collect(),
            ),
            ..Default::default()
        };
        // `history`: a list of objects; `byTier`: a map of objects.
        let schema = |listed: &[&str], mapped: &[&str]| JSONSchemaProps {
            properties: Some(BTreeMap::from([
                (
                    "history".to_string(),
                    JSONSchemaProps {
                        items: Some(JSONSchemaPropsOrArray::Schema(Box::new(obj(listed)))),
                        ..Default::default()
                    },
                ),
                (
                    "byTier".to_string(),
                    JSONSchemaProps {
                        additional_properties: Some(JSONSchemaPropsOrBool::Schema(Box::new(obj(
                            mapped,
                        )))),
                        ..Default::default()
                    },
                ),
            ])),
            ..Default::default()
        };
        let want = schema(&["at", "to"], &["count"]);
        let have = schema(&["at"], &[]);
        let mut out = Vec::new();
        missing_fields(&have, &want, "", &mut out);
        assert_eq!(out, ["byTier[*].count", "history[].to"]);
        let open = JSONSchemaProps {
            x_kubernetes_preserve_unknown_fields: Some(true),
            ..Default::default()
        };
        out.clear();
        missing_fields(&open, &want, "", &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
