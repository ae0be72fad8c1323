//! The least-privilege IAM policy of a pipeline under a profile: exactly the S3 prefixes,
//! Glue tables, DynamoDB tables and KMS key that a run touches.

use serde_json::{Value, json};
use url::Url;

/// What a run touches.
#[derive(Debug, Clone, Default)]
pub struct PolicyScope {
    /// `s3://` source locations (others are ignored).
    pub sources: Vec<String>,
    /// The warehouse, when on S3, and the groups' folders below it (`<group>/`).
    pub warehouse: Option<Url>,
    pub group_folders: Vec<String>,
    pub kms_key: Option<String>,
    /// The Glue database and the tables registered in it.
    pub glue: Option<(String, Vec<String>)>,
    /// The run lists the database's tables (it resolves models' or sources' groups).
    pub glue_lists_tables: bool,
    /// The DynamoDB tables loaded, with the metadata table.
    pub dynamodb_tables: Vec<String>,
    /// `*` when unknown.
    pub region: String,
    /// `*` when unknown.
    pub account: String,
}

const GLUE_ACTIONS: [&str; 9] = [
    "glue:GetDatabase",
    "glue:CreateDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:CreatePartition",
    "glue:UpdatePartition",
];

const DYNAMODB_ACTIONS: [&str; 9] = [
    "dynamodb:DescribeTable",
    "dynamodb:CreateTable",
    "dynamodb:UpdateTimeToLive",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:BatchWriteItem",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:Scan",
    "dynamodb:DescribeTimeToLive",
];

/// The policy document, one statement per kind of access.
pub fn iam_policy(scope: &PolicyScope) -> Value {
    let mut statements = Vec::new();
    let sources: Vec<(String, String)> = scope
        .sources
        .iter()
        .filter_map(|s| bucket_and_prefix(s))
        .collect();
    if !sources.is_empty() {
        statements.push(json!({
            "Sid": "ReadSources",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": sources.iter().map(|(b, p)| format!("arn:aws:s3:::{b}/{p}*")).collect::<Vec<_>>(),
        }));
        statements.extend(list_bucket("ListSources", &sources));
    }
    if let Some((bucket, root)) = scope
        .warehouse
        .as_ref()
        .and_then(|w| bucket_and_prefix(w.as_str()))
    {
        // Each group's snapshots, its leases (see the engine's lease module), and the
        // catalogue's records of its runs.
        let folders: Vec<(String, String)> = scope
            .group_folders
            .iter()
            .map(|g| (bucket.clone(), format!("{root}{g}")))
            .chain(
                scope
                    .group_folders
                    .iter()
                    .map(|g| (bucket.clone(), format!("{root}_fengine/leases/{g}"))),
            )
            .chain(std::iter::once((
                bucket.clone(),
                format!("{root}_fengine/catalogue/"),
            )))
            .collect();
        statements.push(json!({
            "Sid": "WriteSnapshots",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": folders.iter().map(|(b, p)| format!("arn:aws:s3:::{b}/{p}*")).collect::<Vec<_>>(),
        }));
        statements.extend(list_bucket("ListSnapshots", &folders));
    }
    if let Some(key) = &scope.kms_key {
        let arn = if key.starts_with("arn:") {
            key.clone()
        } else {
            format!("arn:aws:kms:{}:{}:key/{key}", scope.region, scope.account)
        };
        statements.push(json!({
            "Sid": "EncryptSnapshots",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": [arn],
        }));
    }
    if let Some((database, tables)) = &scope.glue {
        let prefix = format!("arn:aws:glue:{}:{}", scope.region, scope.account);
        let mut resources = vec![
            format!("{prefix}:catalog"),
            format!("{prefix}:database/{database}"),
        ];
        resources.extend(
            tables
                .iter()
                .map(|t| format!("{prefix}:table/{database}/{t}")),
        );
        let mut actions = GLUE_ACTIONS.to_vec();
        if scope.glue_lists_tables {
            actions.push("glue:GetTables");
        }
        statements.push(json!({
            "Sid": "RegisterSnapshots",
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources,
        }));
    }
    if !scope.dynamodb_tables.is_empty() {
        let prefix = format!("arn:aws:dynamodb:{}:{}:table", scope.region, scope.account);
        statements.push(json!({
            "Sid": "LoadOnlineStore",
            "Effect": "Allow",
            "Action": DYNAMODB_ACTIONS,
            "Resource": scope.dynamodb_tables.iter().map(|t| format!("{prefix}/{t}")).collect::<Vec<_>>(),
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// ListBucket on each bucket, limited to the prefixes.
fn list_bucket(sid: &str, locations: &[(String, String)]) -> Vec<Value> {
    let mut buckets: Vec<&str> = locations.iter().map(|(b, _)| b.as_str()).collect();
    buckets.dedup();
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, bucket)| {
            let prefixes: Vec<String> = locations
                .iter()
                .filter(|(b, _)| b == bucket)
                .map(|(_, p)| format!("{p}*"))
                .collect();
            json!({
                "Sid": format!("{sid}{}", if i == 0 { String::new() } else { i.to_string() }),
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}")],
                "Condition": {"StringLike": {"s3:prefix": prefixes}},
            })
        })
        .collect()
}

/// (`bucket`, `prefix/`) of an `s3://bucket/prefix` location.
fn bucket_and_prefix(location: &str) -> Option<(String, String)> {
    let url = Url::parse(location).ok().filter(|u| u.scheme() == "s3")?;
    let bucket = url.host_str()?.to_string();
    let mut prefix = url.path().trim_start_matches('/').to_string();
    if !prefix.is_empty()
        && !prefix.ends_with('/')
        && !prefix.rsplit('/').next().unwrap_or("").contains('.')
    {
        prefix.push('/');
    }
    Some((bucket, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_exactly_what_a_run_touches() {
        let scope = PolicyScope {
            sources: vec![
                "s3://raw/transactions/".into(),
                "s3://raw/merchants".into(),
                "/local/file.parquet".into(),
            ],
            warehouse: Some(Url::parse("s3://lake/features/").unwrap()),
            group_folders: vec!["spend/".into()],
            kms_key: Some("1234abcd".into()),
            glue: Some(("features".into(), vec!["spend_v1".into()])),
            glue_lists_tables: false,
            dynamodb_tables: vec!["fs_spend_v1".into(), "fs_fengine_online_tables".into()],
            region: "eu-west-1".into(),
            account: "123456789012".into(),
        };
        let policy = iam_policy(&scope);
        let expected = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "ReadSources", "Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": ["arn:aws:s3:::raw/transactions/*", "arn:aws:s3:::raw/merchants/*"]},
                {"Sid": "ListSources", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": ["arn:aws:s3:::raw"],
                 "Condition": {"StringLike": {"s3:prefix": ["transactions/*", "merchants/*"]}}},
                {"Sid": "WriteSnapshots", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                 "Resource": ["arn:aws:s3:::lake/features/spend/*",
                              "arn:aws:s3:::lake/features/_fengine/leases/spend/*",
                              "arn:aws:s3:::lake/features/_fengine/catalogue/*"]},
                {"Sid": "ListSnapshots", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": ["arn:aws:s3:::lake"],
                 "Condition": {"StringLike": {"s3:prefix": ["features/spend/*",
                                                            "features/_fengine/leases/spend/*",
                                                            "features/_fengine/catalogue/*"]}}},
                {"Sid": "EncryptSnapshots", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                 "Resource": ["arn:aws:kms:eu-west-1:123456789012:key/1234abcd"]},
                {"Sid": "RegisterSnapshots", "Effect": "Allow", "Action": GLUE_ACTIONS,
                 "Resource": ["arn:aws:glue:eu-west-1:123456789012:catalog",
                              "arn:aws:glue:eu-west-1:123456789012:database/features",
                              "arn:aws:glue:eu-west-1:123456789012:table/features/spend_v1"]},
                {"Sid": "LoadOnlineStore", "Effect": "Allow", "Action": DYNAMODB_ACTIONS,
                 "Resource": ["arn:aws:dynamodb:eu-west-1:123456789012:table/fs_spend_v1",
                              "arn:aws:dynamodb:eu-west-1:123456789012:table/fs_fengine_online_tables"]},
            ]
        });
        assert_eq!(policy, expected);
    }
}
