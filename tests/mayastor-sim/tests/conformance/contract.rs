//! Validation of JSON instances against the spec's component schemas.

use serde_json::{Value, json};

/// Validates instances against schemas of one spec.
pub struct Contract {
    /// The spec's `components` object.
    pub components: Value,
}

impl Contract {
    /// Asserts that `instance` is valid for `schema` (which may `$ref` component schemas).
    pub fn check(&self, what: &str, schema: Value, instance: &Value) {
        let errors = self.violations(what, schema, instance);
        assert!(
            errors.is_empty(),
            "{what} violates the spec:\n{}\n{instance:#}",
            errors.join("\n")
        );
    }

    /// The violations of `schema` by `instance`.
    pub fn violations(&self, what: &str, schema: Value, instance: &Value) -> Vec<String> {
        let root = json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "components": self.components,
            "allOf": [schema],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            // Draft 4 has no `uuid` format; OpenAPI's VolumeId/ReplicaId/… use it.
            .with_format("uuid", couchestor_mayastor_sim::ids::is_uuid)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"));
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    pub fn component(&self, what: &str, name: &str, instance: &Value) {
        self.check(
            what,
            json!({"$ref": format!("#/components/schemas/{name}")}),
            instance,
        );
    }

    pub fn array_of(&self, what: &str, name: &str, instance: &Value) {
        assert!(
            instance.as_array().is_some_and(|a| !a.is_empty()),
            "{what}: non-empty array expected"
        );
        let schema =
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}});
        self.check(what, schema, instance);
    }

    /// A failed call: expected status and a valid `RestJsonError` of `kind`.
    pub fn error(&self, what: &str, (status, body): (u16, Value), want: u16, kind: &str) {
        assert_eq!(status, want, "{what}: {body}");
        self.component(what, "RestJsonError", &body);
        assert_eq!(body["kind"], kind, "{what}: {body}");
    }
}
