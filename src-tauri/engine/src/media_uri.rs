//! The app's `media:` URLs, as the webview asks for images (built in `ui/src/ipc/commands.ts`,
//! served by the desktop shell's `media.rs`):
//!
//! - `preview/<instance id>`: the instance's latest preview frame;
//! - `output/<instance id>?filename=&subfolder=&type=[&thumb=1]`: an output file, or its
//!   thumbnail.
//!
//! The path and query come from the webview: anything else is refused (`None`). A file named
//! here is only ever turned into a local path by [`crate::outputs::local_path`].

use comfy_model::{InstanceId, OutputFile};

/// What a `media:` URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRequest {
    Preview {
        instance: InstanceId,
    },
    Output {
        instance: InstanceId,
        file: OutputFile,
        thumb: bool,
    },
}

/// Reads a `media:` URL's path (with or without its leading `/`) and query.
pub fn parse(path: &str, query: Option<&str>) -> Option<MediaRequest> {
    let path = path.trim_start_matches('/');
    let (kind, rest) = path.split_once('/')?;
    let instance = InstanceId(rest.parse().ok()?);
    match kind {
        "preview" => Some(MediaRequest::Preview { instance }),
        "output" => {
            let (mut filename, mut subfolder, mut kind, mut thumb) = (None, None, None, None);
            // The first of each name counts.
            for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
                let slot = match name.as_ref() {
                    "filename" => &mut filename,
                    "subfolder" => &mut subfolder,
                    "type" => &mut kind,
                    "thumb" => &mut thumb,
                    _ => continue,
                };
                if slot.is_none() {
                    *slot = Some(value.into_owned());
                }
            }
            Some(MediaRequest::Output {
                instance,
                file: OutputFile {
                    filename: filename?,
                    subfolder: subfolder.unwrap_or_default(),
                    kind: kind.unwrap_or_else(|| "output".into()),
                },
                thumb: thumb.is_some_and(|v| v == "1"),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_and_output_paths_name_the_instance_by_id_and_decode_the_file() {
        assert_eq!(
            parse("/preview/12", None),
            Some(MediaRequest::Preview {
                instance: InstanceId(12)
            })
        );
        assert_eq!(
            parse(
                "/output/3",
                Some("filename=a%20b.png&subfolder=x%2Fy&type=temp&thumb=1")
            ),
            Some(MediaRequest::Output {
                instance: InstanceId(3),
                file: OutputFile {
                    filename: "a b.png".into(),
                    subfolder: "x/y".into(),
                    kind: "temp".into(),
                },
                thumb: true,
            })
        );
        assert_eq!(parse("/output/3", Some("subfolder=x")), None);
        assert_eq!(parse("/elsewhere/3", None), None);
        assert_eq!(parse("/preview/Local", None), None);
        assert_eq!(parse("/preview/", None), None);
        assert_eq!(parse("/preview/99999999999999999999999", None), None);
    }

    #[test]
    fn a_name_given_twice_counts_once() {
        let Some(MediaRequest::Output { file, .. }) = parse(
            "output/1",
            Some("filename=a.png&filename=b.png&type=output"),
        ) else {
            panic!("an output");
        };
        assert_eq!(file.filename, "a.png");
    }
}
