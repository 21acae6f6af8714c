;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; dns.lisp --- asynchronous DNS lookups.

(in-package #:cl-async)

(defclass dns-request ()
  ((host :initarg :host :reader dns-request-host)
   (family :initarg :family :reader dns-request-family)
   (resolve-cb :initarg :resolve-cb :reader dns-request-resolve-cb)
   (event-cb :initarg :event-cb :reader dns-request-event-cb))
  (:documentation "A DNS lookup in flight."))

(defun family->c (family)
  (cond ((or (null family) (eql family +af-unspec+)) 0)
        ((eql family +af-inet+) 4)
        ((eql family +af-inet6+) 6)
        (t (error "cl-async: unknown address family ~s: use +af-inet+, ~
                   +af-inet6+ or +af-unspec+." family))))

(defun dns-lookup (host resolve-cb &key event-cb (family +af-unspec+))
  "Resolves HOST asynchronously.  RESOLVE-CB gets (address family): the
first address found (a string) and +AF-INET+ or +AF-INET6+.  FAMILY limits
the lookup to +AF-INET+ or +AF-INET6+ (default: either).  A failure reaches
EVENT-CB as a DNS-ERROR naming the host."
  (check-event-loop-running)
  (check-type host string)
  (let* ((request (make-instance 'dns-request :host host :family family
                                              :resolve-cb resolve-cb
                                              :event-cb event-cb))
         (id (register-object request))
         (rc (cl-async-ffi:dns-lookup (loop-pointer) id host
                                      (family->c family))))
    (unless (zerop rc)
      (unregister-object id)
      (error 'dns-error :code rc
                        :msg (format nil "DNS lookup of ~s failed: ~a"
                                     host (cl-async-ffi:strerror rc))))
    nil))

(defun dns-error-for (host code)
  "The DNS-ERROR for a failed lookup of HOST with libuv code CODE."
  (make-condition 'dns-error
                  :code code
                  :msg (format nil "DNS lookup of ~s failed: ~a" host
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
