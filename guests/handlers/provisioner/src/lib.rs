//! The jobs example and test guest (WIT 0.1.3): a kind whose create (and `refresh` action)
//! answers at once, with `example.provision.state` `pending`, and submits a job; the job asks
//! an HTTP backend through the host's `outbound` interface and sets the state from its answer.
//!
//! Attributes: `example.provision.url` (required: the backend URL), `example.provision.state`
//! (`pending`, `active` or `error`), `example.provision.answer` (the backend's answer, or the
//! last failure, at most 200 characters), `example.provision.job` (the last job's id).
//!
//! The job sends `POST {url}` with the job's name as its body and the headers `x-ocni-job`
//! (the job id: the backend's idempotency key, since an attempt may be repeated),
//! `x-ocni-entity` and `x-ocni-attempt`. A 2xx answer sets the state `active`; anything else
//! (another status, a refused or failed request) fails the attempt, and once the retries are
//! spent `job_failed` sets the state `error`.

use ocni_handler_sdk::{Attribute, Change, Entity, Handler, Job, Refusal, action_term, jobs, log, outbound};

const URL: &str = "example.provision.url";
const STATE: &str = "example.provision.state";
const ANSWER: &str = "example.provision.answer";
const JOB: &str = "example.provision.job";

struct Provisioner;

/// Puts the entity in `pending` and submits a job named `name` for it.
fn start(entity: &Entity, name: &str) -> Result<Vec<Change>, Refusal> {
    let url = entity.attr_str(URL).ok_or_else(|| Refusal::invalid(URL, "required"))?;
    let id = jobs::submit(name, url).map_err(|why| Refusal::other(format!("cannot submit the job: {why}")))?;
    log::info("job submitted", &[("job", &id), ("name", name)]);
    Ok(vec![Change::set(STATE, "pending"), Change::set(JOB, id)])
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

impl Handler for Provisioner {
    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        start(&entity, "provision")
    }

    fn on_action(entity: Entity, action: String, _params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        match action_term(&action) {
            "refresh" => start(&entity, "refresh"),
            other => Err(Refusal::conflict(format!("no action {other}"))),
        }
    }

    fn run_job(job: Job) -> Result<Vec<Change>, String> {
        let mut request = outbound::request("POST", &job.payload);
        request.body = job.name.clone().into_bytes();
        request.headers.push(("x-ocni-job".into(), job.id.clone()));
        request.headers.push(("x-ocni-entity".into(), job.entity.location.clone()));
        request.headers.push(("x-ocni-attempt".into(), job.attempt.to_string()));
        let response = outbound::send(&request).map_err(|e| e.describe())?;
        let body = String::from_utf8_lossy(&response.body).into_owned();
        if !(200..300).contains(&response.status) {
            return Err(format!("the backend answered {}: {}", response.status, short(&body)));
        }
        Ok(vec![Change::set(STATE, "active"), Change::set(ANSWER, short(&body))])
    }

    fn job_failed(_job: Job, reason: String) -> Vec<Change> {
        vec![Change::set(STATE, "error"), Change::set(ANSWER, short(&reason))]
    }
}

ocni_handler_sdk::export_handler!(Provisioner);
