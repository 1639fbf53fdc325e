//! The disk document store: one file per document under a directory, reached through URLs
//! that the engine signs and serves itself.

use std::path::{Path, PathBuf};

use super::DocumentError;

/// Files under one directory, named by their storage key.
#[derive(Debug, Clone)]
pub struct DiskFiles {
    dir: PathBuf,
}

impl DiskFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Returns the path of `key`; keys are made by the engine from generated ids and contain
    /// only `a-z 0-9 _ - /`, which [`DiskFiles::path_of`] checks again.
    fn path_of(&self, key: &str) -> Result<PathBuf, DocumentError> {
        let safe = key.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !safe {
            return Err(DocumentError::Store(format!("invalid storage key `{key}`")));
        }
        Ok(self.dir.join(key))
    }

    /// Writes `bytes` as `key`, through a temporary file so a reader never sees half a file.
    pub async fn write(&self, key: &str, bytes: &[u8]) -> Result<(), DocumentError> {
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_error(parent))?;
        }
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, bytes)
            .await
            .map_err(io_error(&partial))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(io_error(&path))
    }

    /// Returns the bytes of `key`, or `None` when there is no such file.
    pub async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, DocumentError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path)(error)),
        }
    }

    /// Returns the size of `key`, or `None` when there is no such file.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, DocumentError> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path)(error)),
        }
    }

    /// Deletes `key`, then the directories of its key that it leaves empty; a missing file is
    /// not an error.
    pub async fn delete(&self, key: &str) -> Result<(), DocumentError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path)(error)),
        }
        self.remove_empty_parents(&path).await;
        Ok(())
    }

    /// Removes the empty directories between `path` and the store's directory. It stops at
    /// the first directory that still contains a file, where `remove_dir` fails.
    async fn remove_empty_parents(&self, path: &Path) {
        let mut current = path.parent();
        while let Some(dir) = current.filter(|dir| *dir != self.dir && dir.starts_with(&self.dir)) {
            if tokio::fs::remove_dir(dir).await.is_err() {
                break;
            }
            current = dir.parent();
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DocumentError + '_ {
    move |error| DocumentError::Store(format!("{}: {error}", path.display()))
}
