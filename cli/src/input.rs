//! Reading a call from a WAV file: G.711 WAV with callrec's own reader (hound cannot read
//! format tags 6/7), 8 kHz mono 16-bit PCM WAV with hound.

use callrec::g711::{encode_into, transcode_into, Codec};
use callrec::wav;
use std::path::Path;

/// A call's audio in the call's codec.
pub struct Call {
    pub codec: Codec,
    pub audio: Vec<u8>,
}

/// Reads `path`; `codec` is the call's codec (None: the file's law, or alaw for PCM).
pub fn read_call(path: &Path, codec: Option<Codec>) -> Result<Call, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let info = wav::parse(&bytes).map_err(|e| e.to_string())?;
    if let (Some(declared), Some(_)) = (info.truncated_from, info.g711_codec()) {
        // As sox does: read what is there, and say so.
        eprintln!(
            "callrec: warning: {}: the data chunk declares {declared} bytes but the file ends \
             after {}; reading those",
            path.display(),
            info.data.len()
        );
    }
    if let Some(law) = info.g711_codec() {
        let data = &bytes[info.data];
        let codec = codec.unwrap_or(law);
        let mut audio = vec![0u8; data.len()];
        transcode_into(law, codec, data, &mut audio);
        return Ok(Call { codec, audio });
    }
    if matches!(info.format_tag, wav::FORMAT_ALAW | wav::FORMAT_ULAW) {
        return Err(format!(
            "G.711 input must be 8000 Hz mono 8-bit, not {} Hz {} channel(s) {}-bit",
            info.sample_rate, info.channels, info.bits_per_sample
        ));
    }
    let reader = hound::WavReader::new(std::io::Cursor::new(&bytes)).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.sample_rate != 8000
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(format!(
            "must be a G.711 WAV or 8000 Hz mono 16-bit PCM, not {} Hz {} channel(s) {}-bit {:?} \
             (convert with: sox IN -r 8000 -c 1 -b 16 OUT.wav)",
            spec.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_format
        ));
    }
    let samples = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|e| e.to_string())?;
    let codec = codec.unwrap_or(Codec::Alaw);
    let mut audio = vec![0u8; samples.len()];
    encode_into(codec, &samples, &mut audio);
    Ok(Call { codec, audio })
}
