//! The state every CRI handler shares: the Docker client, the settings and
//! the facts about Docker and the host learned once at start.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::docker::DockerApi;
use crate::error::{Error, Result};
use crate::host::HostFacts;
use crate::image::pause::PauseImage;
use crate::view::ListCache;

/// Shared handler state.
pub struct Shim {
    /// The Docker Engine.
    pub docker: Arc<dyn DockerApi>,
    /// How application containers are made.
    pub settings: crate::container::Settings,
    /// oom_score_adj for pause containers; `None` when the host does not let
    /// us lower scores.
    pub sandbox_oom_score_adj: Option<i64>,
    /// Facts about Docker.
    pub host: HostFacts,
    /// The pause image in use.
    pub pause: PauseImage,
    /// Writers of the containers' CRI log files.
    pub logs: Arc<crate::logs::LogWriters>,
    /// The live view of the shim's sandboxes and containers.
    pub view: Arc<crate::view::View>,
    /// Kernel statistics of containers and pods.
    pub stats: crate::stats::Stats,
    /// Pod networking (Docker's bridge or CNI).
    pub network: Arc<dyn crate::network::PodNetwork>,
    /// The command line, for verbose status.
    pub config: Config,
    /// The CRI list of every sandbox, as of a view generation (built by
    /// `sandbox::list`).
    pub sandbox_list: ListCache<crate::api::PodSandbox>,
    /// The CRI list of every application container, as of a view
    /// generation (built by `container::list`).
    pub container_list: ListCache<crate::api::Container>,
    /// ExecSync output held across calls.
    pub exec_output: crate::exec_output::ExecOutputBudget,
    /// Docker's version as `Version` reports it, reused for a few seconds.
    pub docker_version: crate::host::DockerVersion,
}

impl Shim {
    /// Builds the state from the configuration and a connected Docker.
    pub async fn new(
        config: Config,
        docker: Arc<dyn DockerApi>,
        api_version: String,
    ) -> Result<Self> {
        let host = HostFacts::discover(docker.as_ref(), api_version).await?;
        Self::with_facts(config, docker, host)
    }

    /// Builds the state from facts already known about Docker and the host
    /// (the unit tests give them instead of asking a Docker or reading
    /// `/proc`).
    pub fn with_facts(config: Config, docker: Arc<dyn DockerApi>, host: HostFacts) -> Result<Self> {
        let may_lower_oom_score = host.may_lower_oom_score;
        if !may_lower_oom_score {
            tracing::warn!(
                "this host withholds CAP_SYS_RESOURCE: negative oom_score_adj values are raised to 0"
            );
        }
        let log_driver = crate::logs::driver::choose(
            crate::logs::driver::LogFlags {
                driver: config.docker_log_driver.as_deref(),
                opts: &config.docker_log_opts,
                max_size: &config.docker_log_max_size,
                max_files: config.docker_log_max_files,
            },
            &host.log_driver,
        )
        .map_err(Error::InvalidArgument)?;
        if log_driver.log_config.is_none() {
            tracing::info!(
                driver = %log_driver.driver,
                "application containers keep the daemon's log driver and options; their CRI log files are written from Docker's dual-logging cache"
            );
        } else {
            tracing::info!(driver = %log_driver.driver, "log driver of application containers");
        }
        let sandbox_oom_score_adj =
            Some(config.sandbox_oom_score_adj).filter(|adj| *adj >= 0 || may_lower_oom_score);
        let settings = crate::container::Settings {
            may_lower_oom_score,
            log_config: log_driver.log_config,
            features: host.features.clone(),
        };
        let network = crate::network::from_config(&config).map_err(Error::InvalidArgument)?;
        let pause = PauseImage::new(
            config.pod_infra_container_image.clone(),
            Duration::from_secs(config.pod_infra_pull_timeout),
        );
        let logs = Arc::new(crate::logs::LogWriters::new(docker.clone()));
        let view = Arc::new(crate::view::View::new(docker.clone(), logs.clone()));
        Ok(Self {
            stats: crate::stats::Stats::new(view.clone(), &host.image_fs_dir),
            view,
            logs,
            sandbox_list: ListCache::default(),
            container_list: ListCache::default(),
            exec_output: Default::default(),
            docker_version: Default::default(),
            network,
            docker,
            settings,
            sandbox_oom_score_adj,
            host,
            pause,
            config,
        })
    }
}

impl Shim {
    /// What the image calls need: Docker, the view's image cache and the
    /// pause image.
    pub fn images(&self) -> crate::image::Images<'_> {
        crate::image::Images {
            docker: self.docker.as_ref(),
            view: &self.view,
            pause: &self.pause,
            image_fs_dir: &self.host.image_fs_dir,
        }
    }

    /// What sandbox orchestration needs: Docker, the pod network, the view,
    /// the pause image and the sandbox list cache.
    pub fn sandboxes(&self) -> crate::sandbox::Sandboxes<'_> {
        crate::sandbox::Sandboxes {
            docker: &self.docker,
            network: &self.network,
            view: &self.view,
            logs: &self.logs,
            pause: &self.pause,
            host: &self.host,
            oom_score_adj: self.sandbox_oom_score_adj,
            root_directory: &self.config.root_directory,
            list_cache: &self.sandbox_list,
        }
    }

    /// What the container calls need: Docker, the view, the log writers,
    /// the container settings, the ExecSync budget, the container list
    /// cache and the sandboxes.
    pub fn containers(&self) -> crate::container::Containers<'_> {
        crate::container::Containers {
            docker: &self.docker,
            view: &self.view,
            logs: &self.logs,
            settings: &self.settings,
            default_runtime: &self.host.default_runtime,
            exec_output: &self.exec_output,
            list_cache: &self.container_list,
            sandboxes: self.sandboxes(),
        }
    }
}
