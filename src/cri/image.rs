//! `ImageService`: thin adapter over [`crate::image`].

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::{paged, respond};
use crate::api::image_service_server::ImageService;
use crate::api::*;
use crate::image;
use crate::shim::Shim;

type Reply<T> = Result<Response<T>, Status>;

/// The CRI image service over Docker's image store.
#[derive(Clone)]
pub struct ImageServiceImpl {
    shim: Arc<Shim>,
}

impl ImageServiceImpl {
    /// Serves with the shim's shared state.
    pub fn new(shim: Arc<Shim>) -> Self {
        Self { shim }
    }
}

#[tonic::async_trait]
impl ImageService for ImageServiceImpl {
    async fn list_images(&self, req: Request<ListImagesRequest>) -> Reply<ListImagesResponse> {
        let result = image::list(&self.shim.images(), req.into_inner().filter).await;
        respond(
            "ListImages",
            result.map(|images| ListImagesResponse { images }),
        )
    }

    async fn stream_images(
        &self,
        req: Request<StreamImagesRequest>,
    ) -> Reply<BoxStream<StreamImagesResponse>> {
        let images = respond(
            "StreamImages",
            image::list(&self.shim.images(), req.into_inner().filter).await,
        )?;
        Ok(Response::new(paged(images.into_inner(), |images| {
            StreamImagesResponse { images }
        })))
    }

    async fn image_status(&self, req: Request<ImageStatusRequest>) -> Reply<ImageStatusResponse> {
        let req = req.into_inner();
        respond(
            "ImageStatus",
            image::status(&self.shim.images(), req.image, req.verbose).await,
        )
    }

    async fn pull_image(&self, req: Request<PullImageRequest>) -> Reply<PullImageResponse> {
        let req = req.into_inner();
        let result = image::pull(&self.shim.images(), req.image, req.auth).await;
        respond(
            "PullImage",
            result.map(|image_ref| PullImageResponse { image_ref }),
        )
    }

    async fn remove_image(&self, req: Request<RemoveImageRequest>) -> Reply<RemoveImageResponse> {
        let result = image::remove(&self.shim.images(), req.into_inner().image).await;
        respond("RemoveImage", result.map(|()| RemoveImageResponse {}))
    }

    async fn image_fs_info(&self, _: Request<ImageFsInfoRequest>) -> Reply<ImageFsInfoResponse> {
        let result = image::fs_info(&self.shim.images()).await;
        respond(
            "ImageFsInfo",
            result.map(|image_filesystems| ImageFsInfoResponse {
                image_filesystems,
                container_filesystems: crate::stats::container_filesystems(&self.shim.stats),
            }),
        )
    }
}
