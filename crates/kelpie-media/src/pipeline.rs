//! Small pieces every GStreamer pipeline here needs: building one from a description,
//! finding its named elements, and reading why it failed.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::MediaError;

/// Builds a pipeline from a `gst-launch` description; `what` names it in errors.
pub(crate) fn launch(desc: &str, what: &str) -> Result<gst::Pipeline, MediaError> {
    gst::parse::launch(desc)
        .map_err(|e| MediaError::Pipeline(format!("cannot build the {what} pipeline: {e}")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| MediaError::Pipeline(format!("the {what} pipeline description did not make a pipeline")))
}

/// The element called `name`, as type `T`.
pub(crate) fn element<T: IsA<gst::Element>>(pipeline: &gst::Pipeline, name: &str) -> Result<T, MediaError> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<T>().ok())
        .ok_or_else(|| MediaError::Pipeline(format!("the pipeline has no usable '{name}' element")))
}

/// The first error the pipeline posted, as text (empty if none).
pub(crate) fn bus_error(pipeline: &gst::Pipeline) -> String {
    pipeline
        .bus()
        .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
        .map(|m| match m.view() {
            gst::MessageView::Error(e) => format!("{} ({})", e.error(), e.debug().unwrap_or_default()),
            _ => String::new(),
        })
        .unwrap_or_default()
}
