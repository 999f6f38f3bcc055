//! Decode throughput: a 20 KB type-4 preview frame and a `progress` message, the two frames a
//! busy server sends most.

use comfy_protocol::{decode_binary, decode_text, ServerFeatures};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn preview_frame(image_len: usize) -> Vec<u8> {
    let meta = br#"{"node_id":"3","prompt_id":"0f8ba2a6-8a2c-4c55-8a0d-8d7f1d9a1b2c","display_node_id":"3","parent_node_id":null,"real_node_id":"3","image_type":"image/jpeg"}"#;
    let mut f = Vec::with_capacity(8 + meta.len() + image_len);
    f.extend_from_slice(&4u32.to_be_bytes());
    f.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    f.extend_from_slice(meta);
    f.extend_from_slice(&[0xff, 0xd8, 0xff, 0xe0]);
    f.resize(8 + meta.len() + image_len, 0x5a);
    f
}

fn bench(c: &mut Criterion) {
    let features = ServerFeatures::default();
    let frame = preview_frame(20 * 1024);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("preview_type4_20KB", |b| {
        b.iter(|| decode_binary(black_box(&frame), &features))
    });
    let progress = r#"{"type":"progress","data":{"value":7,"max":20,"prompt_id":"0f8ba2a6-8a2c-4c55-8a0d-8d7f1d9a1b2c","node":"3"}}"#;
    g.throughput(Throughput::Bytes(progress.len() as u64));
    g.bench_function("progress_json", |b| {
        b.iter(|| decode_text(black_box(progress)))
    });
    let state = r#"{"type":"progress_state","data":{"prompt_id":"0f8ba2a6-8a2c-4c55-8a0d-8d7f1d9a1b2c","nodes":{"1":{"value":1.0,"max":1.0,"state":"finished","node_id":"1","prompt_id":"0f8ba2a6-8a2c-4c55-8a0d-8d7f1d9a1b2c","display_node_id":"1","parent_node_id":null,"real_node_id":"1"},"3":{"value":7.0,"max":20.0,"state":"running","node_id":"3","prompt_id":"0f8ba2a6-8a2c-4c55-8a0d-8d7f1d9a1b2c","display_node_id":"3","parent_node_id":null,"real_node_id":"3"}}}}"#;
    g.throughput(Throughput::Bytes(state.len() as u64));
    g.bench_function("progress_state_json", |b| {
        b.iter(|| decode_text(black_box(state)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
