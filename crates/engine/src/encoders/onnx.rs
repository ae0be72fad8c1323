//! An encoder as an ONNX model, for inference containers that load no fengine: one input
//! per transformed column (`[N, 1]`, double, or string for a one-hot column), one output,
//! `encoded` (`[N, K]`, double), the encoder's outputs in order. Standard operators of
//! opset 19, and `LabelEncoder` of `ai.onnx.ml` for categories; computed in float64, as
//! fengine computes.
//!
//! What ONNX cannot say: a tensor has no nulls, so a missing number is NaN (and encodes to
//! NaN), a missing category the empty string (an unknown one, unless fitted on), and a
//! value `out_of_range => 'null'` or `'error'` declares becomes NaN; an unknown category
//! `unknown => 'error'` declares encodes to zeros.
//!
//! The protobuf is written by hand: the few messages of onnx.proto the model needs, by
//! their field numbers.

use super::{Bucketize, EncoderParameters, Fitted, MinMax, OneHot, StandardScale};
use fengine_dialect::{OutOfRange, Unknown};

/// onnx.proto's `TensorProto.DataType`.
const FLOAT64: i64 = 11;
const INT64: i64 = 7;
const STRING: i64 = 8;
/// onnx.proto's `AttributeProto.AttributeType`.
const ATTRIBUTE_INT: i64 = 2;
const ATTRIBUTE_INTS: i64 = 7;
const ATTRIBUTE_STRINGS: i64 = 8;
const IR_VERSION: i64 = 9;
const OPSET: i64 = 19;
const ML_OPSET: i64 = 3;

/// The ONNX model of an encoder version.
pub fn onnx_model(encoder: &str, version: u32, parameters: &EncoderParameters) -> Vec<u8> {
    let mut graph = Graph::default();
    let mut outputs = Vec::new();
    for transform in &parameters.transforms {
        let input = transform.column().to_string();
        let is_string = matches!(transform, Fitted::OneHot(_));
        graph.inputs.push(value_info(
            &input,
            if is_string { STRING } else { FLOAT64 },
            1,
        ));
        match transform {
            Fitted::StandardScale(t) => outputs.push(graph.standard_scale(&input, t)),
            Fitted::MinMax(t) => outputs.push(graph.min_max(&input, t)),
            Fitted::Log1p(t) => outputs.push(graph.log1p(&input, t.out_of_range)),
            Fitted::Bucketize(t) => outputs.push(graph.bucketize(&input, t)),
            Fitted::OneHot(t) => outputs.push(graph.one_hot(&input, t)),
        }
    }
    let width: usize = parameters
        .transforms
        .iter()
        .map(|t| t.outputs().len())
        .sum();
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut concat = graph.node_named("Concat", &names, "encoded");
    concat.message(5, attribute_int("axis", 1));
    graph.nodes.push(concat);
    graph
        .outputs
        .push(value_info("encoded", FLOAT64, width as i64));

    let mut model = Message::default();
    model.int(1, IR_VERSION);
    model.string(2, "fengine");
    model.string(3, env!("CARGO_PKG_VERSION"));
    model.string(6, &format!("encoder {encoder} v{version}"));
    model.message(7, graph.finish(&format!("{encoder}_v{version}")));
    model.message(8, opset("", OPSET));
    model.message(8, opset("ai.onnx.ml", ML_OPSET));
    model.bytes
}

#[derive(Default)]
struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    inputs: Vec<Message>,
    outputs: Vec<Message>,
    names: usize,
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.names += 1;
        format!("{hint}_{}", self.names)
    }

    /// A node of `op` on `inputs` writing `output`; the caller adds it, with attributes.
    fn node_named(&mut self, op: &str, inputs: &[&str], output: &str) -> Message {
        let mut node = Message::default();
        for input in inputs {
            node.string(1, input);
        }
        node.string(2, output);
        node.string(3, &self.fresh(op));
        node.string(4, op);
        node
    }

    fn node(&mut self, op: &str, inputs: &[&str]) -> String {
        let output = self.fresh(&op.to_lowercase());
        let node = self.node_named(op, inputs, &output);
        self.nodes.push(node);
        output
    }

    /// A constant tensor of `data_type` and shape `dims`, its values written by `values`.
    fn initializer(
        &mut self,
        dims: &[i64],
        data_type: i64,
        values: impl FnOnce(&mut Message),
    ) -> String {
        let name = self.fresh("constant");
        let mut tensor = Message::default();
        for dim in dims {
            tensor.int(1, *dim);
        }
        tensor.int(2, data_type);
        values(&mut tensor);
        tensor.string(8, &name);
        self.initializers.push(tensor);
        name
    }

    fn doubles(&mut self, values: &[f64], dims: &[i64]) -> String {
        self.initializer(dims, FLOAT64, |tensor| tensor.packed_doubles(10, values))
    }

    fn scalar(&mut self, value: f64) -> String {
        self.doubles(&[value], &[])
    }

    fn int64s(&mut self, values: &[i64], dims: &[i64]) -> String {
        self.initializer(dims, INT64, |tensor| tensor.packed_int64s(7, values))
    }

    /// `x`, or NaN (or clipped) where it lies outside `[low, high]`, as `out_of_range` says.
    fn in_range(&mut self, x: &str, low: f64, high: f64, out_of_range: OutOfRange) -> String {
        match out_of_range {
            OutOfRange::Keep => x.to_string(),
            OutOfRange::Clip => {
                let (low, high) = (self.scalar(low), self.scalar(high));
                self.node("Clip", &[x, &low, &high])
            }
            OutOfRange::Null | OutOfRange::Error => {
                let outside = self.outside(x, low, high);
                let nan = self.scalar(f64::NAN);
                self.node("Where", &[&outside, &nan, x])
            }
        }
    }

    fn outside(&mut self, x: &str, low: f64, high: f64) -> String {
        let (low, high) = (self.scalar(low), self.scalar(high));
        let below = self.node("Less", &[x, &low]);
        let above = self.node("Greater", &[x, &high]);
        self.node("Or", &[&below, &above])
    }

    fn standard_scale(&mut self, x: &str, t: &StandardScale) -> String {
        let x = self.in_range(x, t.data_min, t.data_max, t.out_of_range);
        let (mean, scale) = (self.scalar(t.mean), self.scalar(t.scale));
        let centred = self.node("Sub", &[&x, &mean]);
        self.node("Div", &[&centred, &scale])
    }

    fn min_max(&mut self, x: &str, t: &MinMax) -> String {
        let x = self.in_range(x, t.data_min, t.data_max, t.out_of_range);
        let (scale, min) = (self.scalar(t.scale), self.scalar(t.min));
        let scaled = self.node("Mul", &[&x, &scale]);
        self.node("Add", &[&scaled, &min])
    }

    fn log1p(&mut self, x: &str, out_of_range: OutOfRange) -> String {
        let one = self.scalar(1.0);
        let shifted = self.node("Add", &[x, &one]);
        let logged = self.node("Log", &[&shifted]);
        match out_of_range {
            OutOfRange::Keep | OutOfRange::Clip => logged,
            OutOfRange::Null | OutOfRange::Error => {
                let minus_one = self.scalar(-1.0);
                let defined = self.node("Greater", &[x, &minus_one]);
                let nan = self.scalar(f64::NAN);
                self.node("Where", &[&defined, &logged, &nan])
            }
        }
    }

    /// The count of inner edges at or below x (NaN for NaN), as `searchsorted(side='right')`.
    fn bucketize(&mut self, x: &str, t: &Bucketize) -> String {
        let (low, high) = (t.bin_edges[0], t.bin_edges[t.bin_edges.len() - 1]);
        let inner = &t.bin_edges[1..t.bin_edges.len() - 1];
        // x − x: 0, or NaN for NaN.
        let zero_or_nan = self.node("Sub", &[x, x]);
        let bucket = match inner.is_empty() {
            true => zero_or_nan,
            false => {
                let edges = self.doubles(inner, &[1, inner.len() as i64]);
                let reached = self.node("GreaterOrEqual", &[x, &edges]);
                let counted = self.cast_to_double(&reached);
                let axes = self.int64s(&[1], &[1]);
                let sum = self.node("ReduceSum", &[&counted, &axes]);
                self.node("Add", &[&sum, &zero_or_nan])
            }
        };
        match t.out_of_range {
            OutOfRange::Keep | OutOfRange::Clip => bucket,
            OutOfRange::Null | OutOfRange::Error => {
                let outside = self.outside(x, low, high);
                let nan = self.scalar(f64::NAN);
                self.node("Where", &[&outside, &nan, &bucket])
            }
        }
    }

    /// Each category's column index by `LabelEncoder` (−1 for none), compared with 0..K.
    fn one_hot(&mut self, x: &str, t: &OneHot) -> String {
        let frequent: Vec<&String> = t.frequent().collect();
        let columns = t.output_names().len() as i64;
        let infrequent_column = (!t.infrequent.is_empty()).then_some(frequent.len() as i64);
        let mut keys: Vec<&str> = frequent.iter().map(|c| c.as_str()).collect();
        let mut values: Vec<i64> = (0..frequent.len() as i64).collect();
        if let Some(column) = infrequent_column {
            keys.extend(t.infrequent.iter().map(String::as_str));
            values.extend(std::iter::repeat_n(column, t.infrequent.len()));
        }
        let unknown = match (t.unknown, infrequent_column) {
            (Unknown::Infrequent, Some(column)) => column,
            _ => -1,
        };
        let output = self.fresh("category_index");
        let mut encoder = self.node_named("LabelEncoder", &[x], &output);
        encoder.string(7, "ai.onnx.ml");
        encoder.message(5, attribute_strings("keys_strings", &keys));
        encoder.message(5, attribute_ints("values_int64s", &values));
        encoder.message(5, attribute_int("default_int64", unknown));
        self.nodes.push(encoder);
        let range: Vec<i64> = (0..columns).collect();
        let range = self.int64s(&range, &[1, columns]);
        let hot = self.node("Equal", &[&output, &range]);
        self.cast_to_double(&hot)
    }

    /// Booleans as 0.0 and 1.0.
    fn cast_to_double(&mut self, x: &str) -> String {
        let output = self.fresh("cast");
        let mut cast = self.node_named("Cast", &[x], &output);
        cast.message(5, attribute_int("to", FLOAT64));
        self.nodes.push(cast);
        output
    }

    fn finish(self, name: &str) -> Message {
        let mut graph = Message::default();
        for node in self.nodes {
            graph.message(1, node);
        }
        graph.string(2, name);
        for initializer in self.initializers {
            graph.message(5, initializer);
        }
        for input in self.inputs {
            graph.message(11, input);
        }
        for output in self.outputs {
            graph.message(12, output);
        }
        graph
    }
}

/// A `[N, width]` tensor of `element` type.
fn value_info(name: &str, element: i64, width: i64) -> Message {
    let mut rows = Message::default();
    rows.string(2, "N");
    let mut columns = Message::default();
    columns.int(1, width);
    let mut shape = Message::default();
    shape.message(1, rows);
    shape.message(1, columns);
    let mut tensor = Message::default();
    tensor.int(1, element);
    tensor.message(2, shape);
    let mut kind = Message::default();
    kind.message(1, tensor);
    let mut info = Message::default();
    info.string(1, name);
    info.message(2, kind);
    info
}

fn opset(domain: &str, version: i64) -> Message {
    let mut opset = Message::default();
    opset.string(1, domain);
    opset.int(2, version);
    opset
}

fn attribute_int(name: &str, value: i64) -> Message {
    let mut attribute = Message::default();
    attribute.string(1, name);
    attribute.int(3, value);
    attribute.int(20, ATTRIBUTE_INT);
    attribute
}

fn attribute_ints(name: &str, values: &[i64]) -> Message {
    let mut attribute = Message::default();
    attribute.string(1, name);
    for value in values {
        attribute.int(8, *value);
    }
    attribute.int(20, ATTRIBUTE_INTS);
    attribute
}

fn attribute_strings(name: &str, values: &[&str]) -> Message {
    let mut attribute = Message::default();
    attribute.string(1, name);
    for value in values {
        attribute.string(9, value);
    }
    attribute.int(20, ATTRIBUTE_STRINGS);
    attribute
}

/// A protobuf message being written: fields in the wire format, by number.
#[derive(Default)]
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u64) {
        self.varint((u64::from(field) << 3) | wire_type);
    }

    fn int(&mut self, field: u32, value: i64) {
        self.key(field, 0);
        self.varint(value as u64);
    }

    fn length_delimited(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.bytes.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, text: &str) {
        self.length_delimited(field, text.as_bytes());
    }

    fn message(&mut self, field: u32, message: Message) {
        self.length_delimited(field, &message.bytes);
    }

    fn packed_doubles(&mut self, field: u32, values: &[f64]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.length_delimited(field, &bytes);
    }

    fn packed_int64s(&mut self, field: u32, values: &[i64]) {
        let mut packed = Message::default();
        for value in values {
            packed.varint(*value as u64);
        }
        self.length_delimited(field, &packed.bytes);
    }
}
