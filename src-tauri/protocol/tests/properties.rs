//! Properties of the decoders over random inputs (proptest): nothing panics, whatever the bytes;
//! what a server really sends decodes to what it said, whatever the values. The fuzz targets
//! (`fuzz/`, docs/fuzzing.md) go much further on the first point; these run with `cargo test`.

use comfy_protocol::http::{parse_queue, parse_system_stats};
use comfy_protocol::{decode_binary, decode_text, image_size, BinaryFrame, ServerFeatures};
use comfy_protocol::{ServerMessage, CLIENT_FEATURE_FLAGS};
use proptest::prelude::*;
use serde_json::{json, Value};

const TYPES: [&str; 12] = [
    "status",
    "execution_start",
    "execution_cached",
    "executing",
    "executed",
    "progress",
    "progress_state",
    "execution_success",
    "execution_error",
    "execution_interrupted",
    "feature_flags",
    "progress_text",
];

/// Any JSON value, a few levels deep.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Fractions with short decimals: serde_json (without `float_roundtrip`) may read a long
        // one back an ulp off, which is no concern of the decoder's.
        any::<i16>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
        prop_oneof![
            Just("NaN".to_owned()),
            Just("inf".to_owned()),
            Just("1e309".to_owned()),
            Just("prompt_id".to_owned()),
            "[a-z0-9_]{0,6}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("prompt_id".to_owned()),
                    Just("node".to_owned()),
                    Just("value".to_owned()),
                    Just("max".to_owned()),
                    Just("nodes".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("state".to_owned()),
                    "[a-z_]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A number as servers send one: an integer, a float, or a numeric string.
fn loose_number() -> impl Strategy<Value = (Value, f64)> {
    prop_oneof![
        (0u32..100_000).prop_map(|n| (json!(n), f64::from(n))),
        (0u32..1 << 20).prop_map(|n| (json!(f64::from(n) / 8.0), f64::from(n) / 8.0)),
        (0u32..1000).prop_map(|n| (json!(n.to_string()), f64::from(n))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_text_frame_makes_the_decoder_panic(frame in any::<String>()) {
        let _ = decode_text(&frame);
    }

    #[test]
    fn a_known_type_with_any_data_decodes_or_is_refused_without_panicking(
        kind in proptest::sample::select(&TYPES[..]),
        data in value(),
    ) {
        let frame = json!({"type": kind, "data": data}).to_string();
        if let Err(e) = decode_text(&frame) {
            let _ = e.to_string();
        }
    }

    #[test]
    fn progress_decodes_to_the_numbers_the_server_sent(
        (value_json, value) in loose_number(),
        (max_json, max) in loose_number(),
        prompt in "[a-f0-9-]{1,36}",
        node in "[0-9]{1,3}",
    ) {
        let frame = json!({"type": "progress", "data": {
            "value": value_json, "max": max_json, "prompt_id": prompt, "node": node
        }})
        .to_string();
        match decode_text(&frame) {
            Ok(ServerMessage::Progress { prompt_id, node: n, value: v, max: m }) => {
                prop_assert_eq!(prompt_id.as_ref().map(|p| p.as_str()), Some(prompt.as_str()));
                prop_assert_eq!(n.as_ref().map(|n| n.as_str()), Some(node.as_str()));
                prop_assert_eq!(v, value);
                prop_assert_eq!(m, max);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn an_unknown_type_is_kept_whole(kind in "[a-z]{1,8}\\.[a-z]{1,8}", data in value()) {
        let frame = json!({"type": kind, "data": data}).to_string();
        match decode_text(&frame) {
            Ok(ServerMessage::Other { kind: k, data: d }) => {
                prop_assert_eq!(k, kind);
                prop_assert_eq!(d, data);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn no_binary_frame_makes_the_decoder_panic(
        frame in proptest::collection::vec(any::<u8>(), 0..64),
        meta in any::<bool>(),
    ) {
        let features = ServerFeatures { progress_text_metadata: meta };
        let _ = decode_binary(&frame, &features);
        let _ = image_size(&frame);
    }

    #[test]
    fn node_text_decodes_to_what_was_sent_in_either_layout(
        prompt in "[a-f0-9-]{0,36}",
        node in "[0-9a-z:]{0,6}",
        text in any::<String>(),
        meta in any::<bool>(),
    ) {
        let mut frame = 3u32.to_be_bytes().to_vec();
        if meta {
            frame.extend((prompt.len() as u32).to_be_bytes());
            frame.extend(prompt.as_bytes());
        }
        frame.extend((node.len() as u32).to_be_bytes());
        frame.extend(node.as_bytes());
        frame.extend(text.as_bytes());
        let features = ServerFeatures { progress_text_metadata: meta };
        match decode_binary(&frame, &features) {
            Ok(BinaryFrame::Text { prompt_id, node: n, text: t }) => {
                prop_assert_eq!(prompt_id.map(|p| p.as_str().to_owned()), meta.then(|| prompt.clone()));
                prop_assert_eq!(n.as_str(), node.as_str());
                prop_assert_eq!(t, text.as_str());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn a_preview_with_metadata_keeps_its_image_bytes(
        image in proptest::collection::vec(any::<u8>(), 0..64),
        node in "[0-9]{1,3}",
    ) {
        let meta = json!({"node_id": node, "prompt_id": "p", "image_type": "image/png"}).to_string();
        let mut frame = 4u32.to_be_bytes().to_vec();
        frame.extend((meta.len() as u32).to_be_bytes());
        frame.extend(meta.as_bytes());
        frame.extend(&image);
        match decode_binary(&frame, &ServerFeatures::default()) {
            Ok(BinaryFrame::Preview { metadata: Some(m), image: i, .. }) => {
                prop_assert_eq!(i, &image[..]);
                prop_assert_eq!(m.node_id.as_ref().map(|n| n.as_str()), Some(node.as_str()));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn image_size_reads_png_and_jpeg_headers(
        w in any::<u32>(),
        h in any::<u32>(),
        jw in any::<u16>(),
        jh in any::<u16>(),
        app in proptest::collection::vec(any::<u8>(), 0..32),
        sof in proptest::sample::select(vec![0xc0u8, 0xc1, 0xc2, 0xc3, 0xc5, 0xc9, 0xcf]),
    ) {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(w.to_be_bytes());
        png.extend(h.to_be_bytes());
        prop_assert_eq!(image_size(&png), Some((w, h)));

        // SOI, an APP0 segment of any content, then a start of frame.
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0];
        jpeg.extend(((app.len() + 2) as u16).to_be_bytes());
        jpeg.extend(&app);
        jpeg.extend([0xff, sof, 0, 17, 8]);
        jpeg.extend(jh.to_be_bytes());
        jpeg.extend(jw.to_be_bytes());
        prop_assert_eq!(image_size(&jpeg), Some((u32::from(jw), u32::from(jh))));
    }

    #[test]
    fn the_queue_comes_out_in_run_order_with_every_job(
        jobs in proptest::collection::vec((loose_number(), "[a-f0-9]{1,8}", any::<bool>()), 0..8),
    ) {
        let items: Vec<Value> = jobs
            .iter()
            .map(|((n, _), id, mine)| json!([n, id, {}, if *mine { json!({"client_id": "me"}) } else { json!({}) }, []]))
            .collect();
        let body = json!({"queue_running": [], "queue_pending": items}).to_string();
        let q = parse_queue(body.as_bytes());
        prop_assert!(q.is_ok(), "{:?}", q);
        let q = q.unwrap_or_default();
        prop_assert_eq!(q.pending.len(), jobs.len());
        for pair in q.pending.windows(2) {
            prop_assert!(pair[0].number <= pair[1].number);
        }
        let mut sent: Vec<&str> = jobs.iter().map(|(_, id, _)| id.as_str()).collect();
        let mut got: Vec<&str> = q.pending.iter().map(|i| i.prompt_id.as_str()).collect();
        sent.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(sent, got);
    }

    #[test]
    fn system_stats_take_any_body_without_panicking(body in value()) {
        let _ = parse_system_stats(body.to_string().as_bytes());
    }
}

#[test]
fn our_own_feature_flags_are_a_frame_the_decoder_reads() {
    assert!(matches!(
        decode_text(CLIENT_FEATURE_FLAGS),
        Ok(ServerMessage::FeatureFlags(_))
    ));
}
