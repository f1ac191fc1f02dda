//! `callrec serve`'s request bodies: `POST /v1/records` (record options + media + pages) and
//! `POST /v1/records/{id}/digit`. Never a panic; a refusal is a 400 with one short printable
//! message and a short printable field name; an accepted record request has valid options and
//! distinct payload types, and an accepted digit is a DTMF digit. The first byte picks the body.
#![no_main]
use callrec_serve::records::{parse_digit, RecordRequest, Refusal};
use callrec_serve::webhook::{Destinations, WebhookConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "../../core/tests/common/messages.rs"]
mod messages;

fn app_url() -> &'static url::Url {
    static APP: OnceLock<url::Url> = OnceLock::new();
    APP.get_or_init(|| url::Url::parse("http://127.0.0.1:8000/app/").unwrap())
}

/// serve's default policy: private and loopback pages refused, the app URL's host allowed.
fn destinations() -> &'static Destinations {
    static POLICY: OnceLock<Destinations> = OnceLock::new();
    POLICY.get_or_init(|| Destinations::new(&WebhookConfig::default(), Some(app_url())).unwrap())
}

fn check(refusal: &Refusal, body: &[u8]) {
    assert_eq!(refusal.status, 400, "{refusal:?}");
    let text = String::from_utf8_lossy(body);
    messages::check(&refusal.message, &text);
    let field = refusal.field.as_deref().expect("a 400 names its field");
    messages::check(field, &text);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        match RecordRequest::parse(body, Some(app_url()), destinations()) {
            Ok(request) => {
                assert!(request.options.validate().is_ok());
                assert_ne!(
                    Some(request.media.payload_type),
                    request.media.telephone_event_payload_type
                );
                assert!(request.media.payload_type <= 127);
                for page in [&request.next_page, &request.available_page]
                    .into_iter()
                    .flatten()
                {
                    assert!(matches!(page.scheme(), "http" | "https"), "{page}");
                }
            }
            Err(refusal) => check(&refusal, body),
        }
    } else {
        match parse_digit(body) {
            Ok(d) => assert!(callrec::options::is_dtmf_digit(d), "{d:?}"),
            Err(refusal) => check(&refusal, body),
        }
    }
});
