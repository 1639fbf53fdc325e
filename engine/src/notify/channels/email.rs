//! Email over SMTP, through lettre: plain, STARTTLS or TLS from the first byte, with optional
//! authentication. One connection per message; notifications are few enough.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};

use super::{Delivery, DeliveryError};
use crate::notify::NotifyError;
use crate::notify::config::{EmailChannelConfig, SmtpTls};

/// An SMTP channel.
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailChannel {
    /// Reads the password and builds the SMTP transport; nothing connects yet.
    ///
    /// # Errors
    ///
    /// Returns [`NotifyError`] when the password cannot be read, `from` is not a mailbox, or
    /// the TLS settings cannot be built.
    pub fn new(config: &EmailChannelConfig, timeout: Duration) -> Result<Self, NotifyError> {
        let client_error = |message: String| NotifyError::Client {
            channel: config.name.clone(),
            message,
        };
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|error| client_error(format!("`from` is not a mailbox: {error}")))?;
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let parameters = TlsParameters::new(config.host.clone())
                    .map_err(|error| client_error(format!("cannot set up TLS: {error}")))?;
                if config.tls == SmtpTls::Tls {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let port = config.port.unwrap_or(match config.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(username), Some(source)) = (&config.username, &config.password) {
            let password = source.read().map_err(|reason| NotifyError::Secret {
                channel: config.name.clone(),
                reason,
            })?;
            builder = builder.credentials(Credentials::new(
                username.clone(),
                password.expose().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// Sends the notification to the recipient's email address.
    ///
    /// # Errors
    ///
    /// Returns [`DeliveryError`]: permanent for an invalid address or a permanent SMTP reply
    /// (5xx), retriable for anything else.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Result<(), DeliveryError> {
        let message = self.message(delivery)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|error| {
                if error.is_permanent() {
                    DeliveryError::permanent("smtp_rejected", error.to_string())
                } else if error.is_timeout() {
                    DeliveryError::retriable("timeout", error.to_string())
                } else {
                    DeliveryError::retriable("smtp_unavailable", error.to_string())
                }
            })
    }

    fn message(&self, delivery: &Delivery<'_>) -> Result<Message, DeliveryError> {
        let recipient = delivery.recipient;
        let address = recipient.email.as_deref().unwrap_or_default();
        let to = format!("{} <{address}>", recipient.display_name())
            .parse::<Mailbox>()
            .or_else(|_| address.parse::<Mailbox>())
            .map_err(|error| {
                DeliveryError::permanent(
                    "invalid_address",
                    format!(
                        "recipient `{}` has an invalid email address: {error}",
                        recipient.id
                    ),
                )
            })?;
        // The same Message-ID on every attempt lets a mail system drop a repeated delivery.
        let digest = Sha256::digest(delivery.dedup_key.as_bytes());
        let message_id = format!("<{}@notify.valmetal>", hex::encode(&digest[..16]));
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(delivery.payload.subject())
            .message_id(Some(message_id))
            .header(ContentType::TEXT_PLAIN)
            .body(delivery.payload.text())
            .map_err(|error| DeliveryError::permanent("invalid_message", error.to_string()))
    }
}
