//! Read side: volumes, pools, nodes, rebuild history.

use reqwest::Method;

use super::{
    Error, MayastorClient,
    model::{Node, Pool, RebuildHistory, Volume, Volumes},
};

impl MayastorClient {
    /// Page size used by [`MayastorClient::list_volumes`].
    pub const VOLUME_PAGE_SIZE: u32 = 200;

    /// All volumes, following `next_token` until the last page.
    pub async fn list_volumes(&self) -> Result<Vec<Volume>, Error> {
        let mut volumes = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .list_volumes_page(Self::VOLUME_PAGE_SIZE, token)
                .await?;
            let fetched = page.entries.len();
            volumes.extend(page.entries);
            match page.next_token {
                None => return Ok(volumes),
                Some(_) if fetched == 0 => return Ok(volumes),
                Some(next) if token.is_some_and(|previous| next <= previous) => {
                    return Err(Error::Protocol {
                        operation: "get_volumes",
                        endpoint: format!("GET {}", self.base.path()),
                        reason: format!("paging token did not advance ({token:?} -> {next})"),
                    });
                }
                Some(next) => token = Some(next),
            }
        }
    }

    /// One page of `GET /volumes?max_entries=&starting_token=` (`max_entries` 0: no paging).
    pub async fn list_volumes_page(
        &self,
        max_entries: u32,
        starting_token: Option<u64>,
    ) -> Result<Volumes, Error> {
        let (mut request, endpoint) = self.request(Method::GET, &["volumes"])?;
        request = request.query(&[("max_entries", u64::from(max_entries))]);
        if let Some(token) = starting_token {
            request = request.query(&[("starting_token", token)]);
        }
        self.call("get_volumes", (request, endpoint)).await
    }

    /// `GET /volumes/{volume_id}`.
    pub async fn get_volume(&self, volume_id: &str) -> Result<Volume, Error> {
        let request = self.request(Method::GET, &["volumes", volume_id])?;
        self.call("get_volume", request).await
    }

    /// `GET /pools`.
    pub async fn list_pools(&self) -> Result<Vec<Pool>, Error> {
        let request = self.request(Method::GET, &["pools"])?;
        self.call("get_pools", request).await
    }

    /// `GET /pools?volume_id=`: the pools holding replicas of `volume_id`.
    pub async fn list_pools_for_volume(&self, volume_id: &str) -> Result<Vec<Pool>, Error> {
        let (request, endpoint) = self.request(Method::GET, &["pools"])?;
        let request = request.query(&[("volume_id", volume_id)]);
        self.call("get_pools", (request, endpoint)).await
    }

    /// `GET /pools/{pool_id}`.
    pub async fn get_pool(&self, pool_id: &str) -> Result<Pool, Error> {
        let request = self.request(Method::GET, &["pools", pool_id])?;
        self.call("get_pool", request).await
    }

    /// `GET /nodes`.
    pub async fn list_nodes(&self) -> Result<Vec<Node>, Error> {
        let request = self.request(Method::GET, &["nodes"])?;
        self.call("get_nodes", request).await
    }

    /// `GET /nodes/{id}`.
    pub async fn get_node(&self, node_id: &str) -> Result<Node, Error> {
        let request = self.request(Method::GET, &["nodes", node_id])?;
        self.call("get_node", request).await
    }

    /// `GET /volumes/{volume_id}/rebuild-history`.
    pub async fn rebuild_history(&self, volume_id: &str) -> Result<RebuildHistory, Error> {
        let request = self.request(Method::GET, &["volumes", volume_id, "rebuild-history"])?;
        self.call("get_rebuild_history", request).await
    }
}
