//! What the move procedure needs from its host: the Mayastor client, the lock that serialises
//! cordon lifetimes, and the declared Mayastor version. The controller lends these from its
//! [`Context`]; `simulate --backend mayastor` lends its own, so the same step code runs against
//! the in-process simulator without a Kubernetes client.

use crate::context::Context;
use crate::mayastor::MayastorClient;

/// Borrowed handles of one migration step.
#[derive(Clone, Copy)]
pub struct Hands<'a> {
    /// Mayastor REST client.
    pub mayastor: &'a MayastorClient,
    /// Held for every cordon lifetime, so two migrations' cordons never overlap.
    pub cordon_lock: &'a tokio::sync::Mutex<()>,
    /// `--mayastor-version`, if declared.
    pub mayastor_version: Option<&'a str>,
}

impl Context {
    /// The handles the move procedure uses.
    pub fn hands(&self) -> Hands<'_> {
        Hands {
            mayastor: &self.mayastor,
            cordon_lock: &self.cordon_lock,
            mayastor_version: self.settings.mayastor_version.as_deref(),
        }
    }
}
