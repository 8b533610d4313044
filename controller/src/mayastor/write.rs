//! Write side: replica count, labels, cordons.

use reqwest::Method;

use super::{
    Error, MayastorClient,
    model::{Node, Pool, PoolCordonReq, Volume},
};

impl MayastorClient {
    /// `PUT /volumes/{volume_id}/replica_count/{count}`.
    ///
    /// Upstream accepts only ±1 per call, never below 1, and an increase only while the volume
    /// is `Online`; violations come back as HTTP 412 `FailedPrecondition`. An increase returns
    /// as soon as the new replica is attached: its rebuild runs asynchronously afterwards.
    pub async fn set_replica_count(&self, volume_id: &str, count: u8) -> Result<Volume, Error> {
        let count = count.to_string();
        let request = self.request(
            Method::PUT,
            &["volumes", volume_id, "replica_count", &count],
        )?;
        self.call("put_volume_replica_count", request).await
    }

    /// `PUT /pools/{pool_id}/label/{key}={value}?overwrite=` (≥ 2.7.1).
    pub async fn put_pool_label(
        &self,
        pool_id: &str,
        key: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<Pool, Error> {
        let label = format!("{key}={value}");
        let (request, endpoint) =
            self.request(Method::PUT, &["pools", pool_id, "label", &label])?;
        let request = request.query(&[("overwrite", overwrite)]);
        self.call("put_pool_label", (request, endpoint)).await
    }

    /// `DELETE /pools/{pool_id}/label/{key}`.
    pub async fn delete_pool_label(&self, pool_id: &str, key: &str) -> Result<Pool, Error> {
        let request = self.request(Method::DELETE, &["pools", pool_id, "label", key])?;
        self.call("del_pool_label", request).await
    }

    /// `PUT /nodes/{id}/cordon/{label}`: no new replicas (nor targets) on the node.
    pub async fn cordon_node(&self, node_id: &str, label: &str) -> Result<Node, Error> {
        let request = self.request(Method::PUT, &["nodes", node_id, "cordon", label])?;
        self.call("put_node_cordon", request).await
    }

    /// `DELETE /nodes/{id}/cordon/{label}`; the node is uncordoned once no label is left.
    pub async fn uncordon_node(&self, node_id: &str, label: &str) -> Result<Node, Error> {
        let request = self.request(Method::DELETE, &["nodes", node_id, "cordon", label])?;
        self.call("delete_node_cordon", request).await
    }

    /// `PUT /pools/{pool_id}/cordon` with a `PoolCordonReq` body (≥ 2.10 only; older servers
    /// answer 404/405, see [`MayastorClient::capabilities`]).
    pub async fn cordon_pool(&self, pool_id: &str, req: &PoolCordonReq) -> Result<Pool, Error> {
        let (request, endpoint) = self.request(Method::PUT, &["pools", pool_id, "cordon"])?;
        self.call("put_pool_cordon", (request.json(req), endpoint))
            .await
    }

    /// `DELETE /pools/{pool_id}/cordon` with a `PoolCordonReq` body naming what to lift.
    pub async fn uncordon_pool(&self, pool_id: &str, req: &PoolCordonReq) -> Result<Pool, Error> {
        let (request, endpoint) = self.request(Method::DELETE, &["pools", pool_id, "cordon"])?;
        self.call("del_pool_cordon", (request.json(req), endpoint))
            .await
    }

    /// `PUT /nodes/{id}/label/{key}={value}?overwrite=`.
    pub async fn put_node_label(
        &self,
        node_id: &str,
        key: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<Node, Error> {
        let label = format!("{key}={value}");
        let (request, endpoint) =
            self.request(Method::PUT, &["nodes", node_id, "label", &label])?;
        let request = request.query(&[("overwrite", overwrite)]);
        self.call("put_node_label", (request, endpoint)).await
    }

    /// `DELETE /nodes/{id}/label/{key}`.
    pub async fn delete_node_label(&self, node_id: &str, key: &str) -> Result<Node, Error> {
        let request = self.request(Method::DELETE, &["nodes", node_id, "label", key])?;
        self.call("delete_node_label", request).await
    }
}
