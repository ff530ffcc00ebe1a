//! Image references, normalised the way Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `localhost:5000/app` is a repository on
//! the registry `localhost:5000`.

use std::fmt;

use crate::error::{Error, Result};

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, with port if any.
    pub domain: String,
    /// Repository path within the registry.
    pub path: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Content digest (`sha256:...`).
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `input`.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid =
            |why: &str| Error::InvalidArgument(format!("invalid image reference {input:?}: {why}"));
        if input.is_empty() {
            return Err(invalid("empty"));
        }
        let (name, digest) = match input.split_once('@') {
            Some((name, digest)) => {
                let (algo, hex) = digest
                    .split_once(':')
                    .ok_or_else(|| invalid("malformed digest"))?;
                if algo.is_empty() || hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(invalid("malformed digest"));
                }
                (name, Some(digest.to_string()))
            }
            None => (input, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name[..at], Some(name[at + 1..].to_string()))
            }
            None => (name, None),
        };
        if let Some(tag) = &tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(invalid("malformed tag"));
            }
        }
        let (domain, path) = match repo.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), repo.to_string()),
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        let path_ok = !path.is_empty()
            && path.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !path_ok {
            return Err(invalid(
                "repository must be lower-case letters, digits and . _ - /",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, the repository Docker pulls.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What Docker's pull API takes as `tag`: the digest when there is one,
    /// else the tag.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// True when `docker_repo` (as Docker reports it in RepoTags or
    /// RepoDigests, possibly in its short "familiar" form) names this
    /// reference's repository.
    pub fn same_repository(&self, docker_repo: &str) -> bool {
        Reference::parse(docker_repo).is_ok_and(|other| other.repository() == self.repository())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits a `repo@digest` or `repo:tag` string as Docker reports it into its
/// repository part.
pub fn repository_of(docker_ref: &str) -> &str {
    if let Some((repo, _)) = docker_ref.split_once('@') {
        return repo;
    }
    let last_slash = docker_ref.rfind('/').map_or(0, |i| i + 1);
    match docker_ref[last_slash..].rfind(':') {
        Some(i) => &docker_ref[..last_slash + i],
        None => docker_ref,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn short_names_are_normalised_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(
            norm("127.0.0.1:5000/team/app:v2"),
            "127.0.0.1:5000/team/app:v2"
        );
        assert_eq!(
            norm("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            norm(&format!("busybox@{digest}")),
            format!("docker.io/library/busybox@{digest}")
        );
    }

    #[test]
    fn bad_references_are_rejected() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:xyz",
            "a//b",
            "busybox:t@g",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn pull_arguments_split_repository_and_tag() {
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.repository(), "localhost:5000/app");
        assert_eq!(r.tag_or_digest(), "latest");
        assert!(r.same_repository("localhost:5000/app"));
        assert!(
            Reference::parse("busybox")
                .unwrap()
                .same_repository("busybox")
        );
        assert_eq!(
            repository_of("localhost:5000/app@sha256:ab"),
            "localhost:5000/app"
        );
        assert_eq!(repository_of("localhost:5000/app:v1"), "localhost:5000/app");
        assert_eq!(repository_of("localhost:5000/app"), "localhost:5000/app");
    }
}
