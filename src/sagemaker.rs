//! Running as a SageMaker Processing job: the job's name, from the configuration SageMaker
//! mounts in the container, goes in the manifest and on every log line; a failure's message
//! goes to `/opt/ml/output/message`, which `DescribeProcessingJob` reports as the job's
//! `ExitMessage` (its first kilobyte).

use std::path::Path;

const JOB_CONFIG: &str = "/opt/ml/config/processingjobconfig.json";
const EXIT_MESSAGE: &str = "/opt/ml/output/message";
const EXIT_MESSAGE_BYTES: usize = 1024;

/// The Processing job this process runs in.
#[derive(Debug, Clone)]
pub(crate) struct ProcessingJob {
    pub(crate) name: String,
}

/// The Processing job, when the process runs in one. A configuration that cannot be read
/// is said, not fatal: the job name is for the records, not for the run.
pub(crate) fn processing_job() -> Option<ProcessingJob> {
    let path = Path::new(JOB_CONFIG);
    if !path.exists() {
        return None;
    }
    let name = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| e.to_string())
        })
        .and_then(
            |config| match config.get("ProcessingJobName").and_then(|n| n.as_str()) {
                Some(name) => Ok(name.to_string()),
                None => Err("it has no ProcessingJobName".to_string()),
            },
        );
    match name {
        Ok(name) => Some(ProcessingJob { name }),
        Err(e) => {
            tracing::warn!("cannot read the Processing job's name from {JOB_CONFIG}: {e}");
            Some(ProcessingJob {
                name: "unknown".to_string(),
            })
        }
    }
}

impl ProcessingJob {
    /// Leaves the message SageMaker reports as the job's `ExitMessage`: the first kilobyte,
    /// cut at a character boundary (SageMaker fails a job whose message is not UTF-8).
    pub(crate) fn write_exit_message(&self, message: &str) {
        let mut end = message.len().min(EXIT_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let written = Path::new(EXIT_MESSAGE)
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(EXIT_MESSAGE, &message[..end]));
        if let Err(e) = written {
            tracing::warn!("cannot write the exit message to {EXIT_MESSAGE}: {e}");
        }
    }
}
