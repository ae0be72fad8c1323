//! A DynamoDB endpoint that does what the local servers never do: it leaves a share of each
//! BatchWriteItem's items unprocessed and throttles a share of the requests. It answers
//! just enough of the rest of the API (an ACTIVE table, one metadata item, nothing to scan)
//! for a load, and records every item it accepted.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

pub struct FaultyDynamoDb {
    pub endpoint: String,
    accepted: Arc<Mutex<HashSet<String>>>,
    requests: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub batch_requests: u64,
    pub throttled: u64,
    pub items_left_unprocessed: u64,
}

/// What share of items to leave unprocessed, and of requests to throttle, in percent.
#[derive(Clone, Copy)]
pub struct Faults {
    pub unprocessed_percent: u64,
    pub throttled_percent: u64,
}

impl FaultyDynamoDb {
    /// Serves on a free port of 127.0.0.1 until the test process ends; `key` names the
    /// attribute whose values identify the accepted items.
    pub fn start(faults: Faults, key: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(HashSet::new()));
        let requests = Arc::new(Mutex::new(Counts::default()));
        let (shared_accepted, shared_requests) = (accepted.clone(), requests.clone());
        // The one metadata item of the table: a load reads back what it set.
        let metadata = Arc::new(Mutex::new(json!({})));
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let (accepted, requests) = (shared_accepted.clone(), shared_requests.clone());
                let metadata = metadata.clone();
                let seed = n as u64 + 1;
                std::thread::spawn(move || {
                    let recorded = Recorded {
                        accepted: &accepted,
                        counts: &requests,
                        metadata: &metadata,
                    };
                    serve(stream.unwrap(), faults, key, seed, recorded)
                });
            }
        });
        FaultyDynamoDb {
            endpoint,
            accepted,
            requests,
        }
    }

    pub fn accepted(&self) -> HashSet<String> {
        self.accepted.lock().unwrap().clone()
    }

    pub fn counts(&self) -> Counts {
        *self.requests.lock().unwrap()
    }
}

/// A small deterministic generator: the faults are random-looking but repeatable.
struct XorShift(u64);

impl XorShift {
    fn percent(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100
    }
}

/// What the server keeps across connections.
struct Recorded<'a> {
    accepted: &'a Mutex<HashSet<String>>,
    counts: &'a Mutex<Counts>,
    metadata: &'a Mutex<Value>,
}

fn serve(stream: TcpStream, faults: Faults, key: &str, seed: u64, recorded: Recorded<'_>) {
    let Recorded {
        accepted,
        counts,
        metadata,
    } = recorded;
    let mut random = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut target = String::new();
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "x-amz-target" => target = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, response) = match target.rsplit('.').next().unwrap_or_default() {
            "BatchWriteItem" => batch_write(&request, faults, key, &mut random, accepted, counts),
            "DescribeTable" => (
                200,
                json!({"Table": {"TableName": request["TableName"], "TableStatus": "ACTIVE"}}),
            ),
            "UpdateItem" => {
                set_attributes(&request, &mut metadata.lock().unwrap());
                (200, json!({}))
            }
            "GetItem" => (200, json!({"Item": *metadata.lock().unwrap()})),
            "Scan" => (200, json!({"Items": [], "Count": 0, "ScannedCount": 0})),
            other => (
                400,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": format!("{other} is not served here")}),
            ),
        };
        let body = response.to_string();
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        write!(
            writer,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
}

/// Applies the `#aN = :aN` assignments of an UpdateItem to `item`.
fn set_attributes(request: &Value, item: &mut Value) {
    let (Some(names), Some(values)) = (
        request["ExpressionAttributeNames"].as_object(),
        request["ExpressionAttributeValues"].as_object(),
    ) else {
        return;
    };
    for (placeholder, name) in names {
        let value = &values[&placeholder.replacen('#', ":", 1)];
        if let (Some(name), false) = (name.as_str(), value.is_null()) {
            item[name] = value.clone();
        }
    }
}

fn batch_write(
    request: &Value,
    faults: Faults,
    key: &str,
    random: &mut XorShift,
    accepted: &Mutex<HashSet<String>>,
    counts: &Mutex<Counts>,
) -> (u16, Value) {
    let mut counts = counts.lock().unwrap();
    counts.batch_requests += 1;
    if random.percent() < faults.throttled_percent {
        counts.throttled += 1;
        return (
            400,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                   "message": "The level of configured provisioned throughput for the table was exceeded"}),
        );
    }
    let mut unprocessed = serde_json::Map::new();
    for (table, writes) in request["RequestItems"].as_object().unwrap() {
        let mut left = Vec::new();
        for write in writes.as_array().unwrap() {
            if random.percent() < faults.unprocessed_percent {
                left.push(write.clone());
                continue;
            }
            let value = &write["PutRequest"]["Item"][key];
            let id = value["N"]
                .as_str()
                .or(value["S"].as_str())
                .unwrap()
                .to_string();
            accepted.lock().unwrap().insert(id);
        }
        counts.items_left_unprocessed += left.len() as u64;
        if !left.is_empty() {
            unprocessed.insert(table.clone(), Value::Array(left));
        }
    }
    (200, json!({"UnprocessedItems": unprocessed}))
}
