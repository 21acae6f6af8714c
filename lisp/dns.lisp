;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; dns.lisp --- asynchronous DNS lookups, forward and reverse.

(in-package #:cl-async)

(defclass dns-request ()
  ((host :initarg :host :reader dns-request-host)
   (family :initarg :family :reader dns-request-family)
   (resolve-cb :initarg :resolve-cb :reader dns-request-resolve-cb)
   (event-cb :initarg :event-cb :reader dns-request-event-cb))
  (:documentation "A DNS lookup in flight (forward: HOST is the name;
reverse: HOST is the address)."))

(defclass reverse-dns-request (dns-request) ()
  (:documentation "A reverse DNS lookup in flight."))

(defun family->c (family)
  (cond ((eql family +af-unspec+) 0)
        ((eql family +af-inet+) 4)
        ((eql family +af-inet6+) 6)
        (t (error "dns-lookup: unknown address family ~s: use as:+af-inet+, ~
                   as:+af-inet6+ or as:+af-unspec+." family))))

(defun dns-lookup (host resolve-cb &key event-cb (family +af-inet+))
  "Resolves HOST (a name or an IP address string) asynchronously, on
libuv's thread pool, also for IP literals.  Needs a running loop.

  RESOLVE-CB  (lambda (address family)), run once with the first address
              found, a string (\"127.0.0.1\", \"::1\"), and its family,
              +AF-INET+ or +AF-INET6+ (this platform's values).
  :event-cb   (lambda (condition)): a failure, as a DNS-ERROR naming the
              host, and, when the loop catches app errors, errors raised
              in RESOLVE-CB.  Without one a failure is dropped.
  :family     +AF-INET+ (the default, as in upstream's code), +AF-INET6+,
              or +AF-UNSPEC+ for either.

A lookup that cannot start signals a DNS-ERROR.  Returns t."
  (check-event-loop-running)
  (check-type host string)
  (let* ((c-family (family->c family))
         (request (make-instance 'dns-request :host host :family family
                                              :resolve-cb resolve-cb
                                              :event-cb event-cb))
         (id (register-object request))
         (rc (cl-async-ffi:dns-lookup (loop-pointer) id host c-family)))
    (unless (zerop rc)
      (unregister-object id)
      (error 'dns-error :code rc
                        :msg (format nil "DNS lookup of ~s failed: ~a"
                                     host (cl-async-ffi:strerror rc))))
    t))

(defun dns-error-for (host code &optional (what "DNS lookup"))
  "The DNS-ERROR for a failed lookup of HOST with libuv code CODE."
  (make-condition 'dns-error
                  :code code
                  :msg (format nil "~a of ~s failed: ~a" what host
                               (cl-async-ffi:strerror code))))

(defmethod object-dns ((request dns-request) status results)
  (let ((event-cb (dns-request-event-cb request)))
    (catch-app-errors event-cb
      (if (and (zerop status) results)
          (destructuring-bind (address . family) (first results)
            (funcall (dns-request-resolve-cb request)
                     address (if (= family 6) +af-inet6+ +af-inet+)))
          (let ((c (dns-error-for (dns-request-host request) status)))
            (when event-cb
              (run-event-cb event-cb c)))))))

(defun reverse-dns-lookup (ip resolve-cb &key event-cb)
  "Looks up the name of the IPv4 or IPv6 address IP (a string such as
\"127.0.0.1\" or \"::1\") asynchronously.  Needs a running loop.

  RESOLVE-CB  (lambda (host service)), run once: HOST the name found, or
              the address itself when it has none; SERVICE \"0\" (the
              port looked up is 0).
  :event-cb   (lambda (condition)): a failure, as a DNS-ERROR naming the
              address, and, when the loop catches app errors, errors
              raised in RESOLVE-CB.  Without one a failure is dropped.

IP must be a numeric address: anything else signals an EVENT-ERROR at once
(upstream looked up 0.0.0.0 instead).  Returns t."
  (check-event-loop-running)
  (unless (and (stringp ip) (ip-address-p ip))
    (error 'event-error
           :code cl-async-ffi:+uv-einval+
           :msg (format nil "reverse-dns-lookup: ~s is not an IPv4 or IPv6 ~
                             address (give a numeric address such as ~
                             \"127.0.0.1\" or \"::1\"; to resolve a name, ~
                             use dns-lookup)" ip)))
  (let* ((request (make-instance 'reverse-dns-request
                                 :host ip :family nil :resolve-cb resolve-cb
                                 :event-cb event-cb))
         (id (register-object request))
         (rc (cl-async-ffi:dns-reverse (loop-pointer) id ip)))
    (unless (zerop rc)
      (unregister-object id)
      (error 'event-error
             :code rc
             :msg (format nil "reverse-dns-lookup of ~s cannot start: ~a" ip
                          (if (= rc cl-async-ffi:+einval+)
                              "not an address the system can look up"
                              (cl-async-ffi:strerror rc)))))
    t))

(defmethod object-nameinfo ((request reverse-dns-request) status host service)
  (let ((event-cb (dns-request-event-cb request)))
    (catch-app-errors event-cb
      (if (zerop status)
          (funcall (dns-request-resolve-cb request) host service)
          (when event-cb
            (run-event-cb event-cb
                          (dns-error-for (dns-request-host request) status
                                         "Reverse DNS lookup")))))))
