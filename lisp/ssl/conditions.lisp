;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; conditions.lisp --- the TLS conditions and signalling the failures of
;;;; context calls.

(in-package #:cl-async-ssl)

;;;# Conditions

(define-condition tcp-ssl-error (tcp-error)
  ((reason :initarg :reason :initform nil :reader tcp-ssl-error-reason
           :documentation "OpenSSL's text for the failure."))
  (:report (lambda (c s)
             (format s "~a: ~a" (type-of c) (or (event-errmsg c) "TLS error"))))
  (:documentation "A TLS failure on a socket or server: a handshake or
protocol error, an alert from the peer, or a context that could not be
set up.  TCP-SSL-ERROR-REASON gives OpenSSL's text."))

(define-condition tcp-ssl-verify-error (tcp-ssl-error)
  ((verify-code :initarg :verify-code :initform 0
                :reader tcp-ssl-verify-code
                :documentation "The X509 verification result code.")
   (verify-message :initarg :verify-message :initform nil
                   :reader tcp-ssl-verify-message
                   :documentation "Its text (\"self-signed certificate\")."))
  (:documentation "The peer's certificate was not accepted: its chain,
validity or name.  The message says what failed and what to pass."))

(define-condition tcp-ssl-truncated (tcp-eof tcp-ssl-error)
  ()
  (:documentation "The peer closed the TCP connection without a TLS
close_notify: the data may have been cut short by an attacker or a crash.
It is a TCP-EOF (the connection is over) and a TCP-SSL-ERROR."))

(define-condition tcp-ssl-handshake-eof (tcp-eof tcp-ssl-error)
  ()
  (:documentation "The peer closed the connection during the TLS handshake
(it gave up, or does not speak TLS).  It is a TCP-EOF, so upstream-style
TCP-EOF handlers match, and a TCP-SSL-ERROR."))

(setf (documentation 'tcp-ssl-error-reason 'function)
      "OpenSSL's text for the failure of a TCP-SSL-ERROR."
      (documentation 'tcp-ssl-verify-code 'function)
      "The X509 verification result code of a TCP-SSL-VERIFY-ERROR (0 when a
client sent no certificate to a server that requires one)."
      (documentation 'tcp-ssl-verify-message 'function)
      "The text of the verification result (\"self-signed certificate\").")

;;;# Errors from the C library

(defun ssl-error (code message &key socket reason)
  "Signals a TCP-SSL-ERROR."
  (error 'tcp-ssl-error :code code :msg message :socket socket
                        :reason (or reason message)))

(defun check-ctx-call (ctx rc what)
  "Signals a TCP-SSL-ERROR when RC (from a context call) is an error."
  (unless (zerop rc)
    (let ((detail (cl-async-ffi:tls-ctx-error ctx)))
      ;; The library's text names the file or setting already.
      (ssl-error rc (if (plusp (length detail))
                        detail
                        (format nil "~a: ~a" what (cl-async-ffi:strerror rc)))
                 :reason detail))))
