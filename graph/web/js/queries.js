// The page's GraphQL documents. Each is sent by its SHA-256 first (persisted queries).

// deploy/rollcall-web-documents.json lists these documents for trusted-documents deployments:
// run scripts/page_manifest.py after changing one (a test compares them).

// The token and the viewer as the page keeps them (localStorage), in one request.
export const LOGIN = `mutation Login($tenant: String!, $email: String!, $password: String!) {
  login(tenant: $tenant, email: $email, password: $password) {
    token
    user {
      id email role
      tenant { name slug timezone periodsPerDay warningThreshold mahroomThreshold }
      student { id name classroom { name } }
    }
  }
}`;

const WEEK_FIELDS = `
    weekStart weekEnd totalClasses presentCount absentCount sickCount leaveCount attendanceRate
    days { date records { period status subject { name } } }`;

const DASHBOARD_FIELDS = `
  studentId totalClasses presentDays absentDays sickDays leaveDays attendanceRate
  classAverage ranking classSize percentile trend standing lastUpdated statisticsCalculatedAt`;

export const DASHBOARD = `query StudentPage($weekStart: Date!, $weeks: Int!) {
  studentDashboard { ${DASHBOARD_FIELDS} }
  weeklyAttendance(weekStart: $weekStart) { ${WEEK_FIELDS} }
  attendanceHistory(weeks: $weeks) {
    weekStart weekEnd totalClasses attendanceRate cumulativeClasses cumulativeRate
  }
  notifications(first: 10) {
    totalCount
    edges { node { id type title message severity createdAt read } }
  }
  unread: notifications(unreadOnly: true, first: 1) { totalCount }
  medicalCertificates(first: 10) {
    edges { node { id fileName size status rejectionReason uploadedAt coversFrom coversTo downloadUrl } }
  }
  notificationPreferences {
    emailEnabled inAppEnabled attendanceAlerts fileUpdates systemAnnouncements
  }
}`;

// Another week than the current one, as the student browses back.
export const WEEK = `query Week($weekStart: Date!) {
  weeklyAttendance(weekStart: $weekStart) { ${WEEK_FIELDS} }
}`;

export const DASHBOARD_UPDATED = `subscription DashboardUpdated {
  dashboardUpdated { ${DASHBOARD_FIELDS} }
}`;

export const NOTIFICATION_RECEIVED = `subscription NotificationReceived {
  notificationReceived { id type title message severity createdAt read }
}`;

export const MARK_READ = `mutation MarkRead($id: ID!) {
  markNotificationRead(id: $id) { id read }
}`;

export const MARK_ALL_READ = `mutation MarkAllRead { markAllNotificationsRead }`;

export const UPDATE_PREFERENCES = `mutation UpdatePreferences($input: NotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) {
    emailEnabled inAppEnabled attendanceAlerts fileUpdates systemAnnouncements
  }
}`;

export const UPLOAD_CERTIFICATE = `mutation UploadCertificate($file: Upload!, $input: MedicalCertificateInput!) {
  uploadMedicalCertificate(file: $file, input: $input) { id fileName status uploadedAt }
}`;

// Setting a password by emailed link (password.js).
export const REQUEST_PASSWORD_RESET = `mutation RequestPasswordReset($tenant: String!, $email: String!) {
  requestPasswordReset(tenant: $tenant, email: $email)
}`;

export const RESET_PASSWORD = `mutation ResetPassword($token: String!, $newPassword: String!) {
  resetPassword(token: $token, newPassword: $newPassword)
}`;

// ---- the teacher's register (teacher.html); it signs in with LOGIN too ----

// The classes the viewer may mark, by name: a teacher's own, an admin's every one.
export const REGISTER_CLASSES = `query RegisterClasses($after: String) {
  classrooms(first: 100, after: $after) {
    edges { node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}`;

// One class's subjects and one page of its students, by name.
export const REGISTER_CLASS = `query RegisterClass($id: ID!, $after: String) {
  classroom(id: $id) {
    id name
    subjects { id name }
    students(first: 100, after: $after) {
      edges { node { id name } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;

// The period's marks as they stand, so that taking the register again starts from them.
export const REGISTER_PERIOD = `query RegisterPeriod($classroomId: ID!, $date: Date!, $period: Int!) {
  periodAttendance(classroomId: $classroomId, date: $date, period: $period) { studentId status }
}`;

export const MARK_ATTENDANCE = `mutation MarkAttendance($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { studentId date period status } }
}`;

export const ATTENDANCE_UPDATED = `subscription AttendanceUpdated($classroomId: ID!) {
  attendanceUpdated(classroomId: $classroomId) {
    studentId classroomId date period status markedBy subject { name }
  }
}`;
