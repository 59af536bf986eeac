//! Small pieces every GStreamer pipeline here needs: building one from a description,
//! finding its named elements, and reading why it failed.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::{GstCause, MediaError};

/// Builds a pipeline from a `gst-launch` description; `what` names it in errors.
pub(crate) fn launch(desc: &str, what: &str) -> Result<gst::Pipeline, MediaError> {
    gst::parse::launch(desc).map_err(|e| MediaError::pipeline(what, e))?.downcast::<gst::Pipeline>().map_err(
        |_| MediaError::pipeline(what, GstCause::Missing("the description did not make a pipeline".into())),
    )
}

/// The element called `name`, as type `T`.
pub(crate) fn element<T: IsA<gst::Element>>(pipeline: &gst::Pipeline, name: &str) -> Result<T, MediaError> {
    pipeline.by_name(name).and_then(|e| e.downcast::<T>().ok()).ok_or_else(|| {
        MediaError::pipeline(
            pipeline.name().as_str(),
            GstCause::Missing(format!("the pipeline has no usable '{name}' element")),
        )
    })
}

/// The first error the pipeline posted, if any.
pub(crate) fn bus_error(pipeline: &gst::Pipeline) -> Option<GstCause> {
    let msg = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(GstCause::Posted {
            error: e.error(),
            debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
        }),
        _ => None,
    }
}
