//! Several pipelines in one run: ordered so that each runs after the pipelines defining the
//! published groups it reads (`features.<group>`), and refused, naming it, if their reads
//! go around a circle.

use fengine_dialect::Pipeline;

use crate::catalogue::{feature_references, names_group};
use crate::error::{Error, Result};

/// The pipelines in an order their `features.` reads allow, keeping the given order where
/// they do not constrain it.
pub fn order_pipelines(pipelines: Vec<Pipeline>) -> Result<Vec<Pipeline>> {
    let defines: Vec<Vec<String>> = pipelines
        .iter()
        .map(|p| p.feature_groups().map(|(g, _)| g.name()).collect())
        .collect();
    // needs[i]: the pipelines whose groups pipeline i reads, with a group it reads of each.
    let mut needs: Vec<Vec<(usize, String)>> = Vec::with_capacity(pipelines.len());
    for (index, pipeline) in pipelines.iter().enumerate() {
        let mut needed = Vec::new();
        for reference in feature_references(pipeline)? {
            let group = group_of(&reference.table, &defines);
            if let Some((definer, group)) = group
                && definer != index
                && !needed.iter().any(|(d, _)| *d == definer)
            {
                needed.push((definer, group));
            }
        }
        needs.push(needed);
    }
    let mut order = Vec::with_capacity(pipelines.len());
    let mut state = vec![Visit::New; pipelines.len()];
    for start in 0..pipelines.len() {
        visit(
            start,
            &needs,
            &pipelines,
            &mut state,
            &mut Vec::new(),
            &mut order,
        )?;
    }
    let mut slots: Vec<Option<Pipeline>> = pipelines.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|i| slots[i].take().expect("each pipeline is ordered once"))
        .collect())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    Open,
    Done,
}

fn visit(
    index: usize,
    needs: &[Vec<(usize, String)>],
    pipelines: &[Pipeline],
    state: &mut [Visit],
    path: &mut Vec<(usize, String)>,
    order: &mut Vec<usize>,
) -> Result<()> {
    match state[index] {
        Visit::Done => return Ok(()),
        Visit::Open => return Err(cycle(index, path, pipelines)),
        Visit::New => {}
    }
    state[index] = Visit::Open;
    for (definer, group) in &needs[index] {
        path.push((index, group.clone()));
        visit(*definer, needs, pipelines, state, path, order)?;
        path.pop();
    }
    state[index] = Visit::Done;
    order.push(index);
    Ok(())
}

/// `a.sql reads features.x of b.sql, which reads features.y of a.sql`.
fn cycle(start: usize, path: &[(usize, String)], pipelines: &[Pipeline]) -> Error {
    let first = path
        .iter()
        .position(|(i, _)| *i == start)
        .expect("an open pipeline is on the path");
    let steps: Vec<String> = path[first..]
        .iter()
        .map(|(i, group)| format!("{} reads features.{group}", pipelines[*i].path.display()))
        .collect();
    Error::Config(format!(
        "the pipelines read each other's groups around a circle: {}, defined by {}; no order \
         runs each after what it reads. Read one of these from its own query instead",
        steps.join(", defined by "),
        pipelines[start].path.display()
    ))
}

/// The pipeline defining the group a `features.` table names, and the group.
fn group_of(table: &str, defines: &[Vec<String>]) -> Option<(usize, String)> {
    defines.iter().enumerate().find_map(|(index, groups)| {
        groups
            .iter()
            .find(|group| names_group(table, group))
            .map(|group| (index, group.clone()))
    })
}
